"""`rlvr data prepare`: each step on small data made here, the report, errors, and no partial output."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from rlvr.cli import main

TRAIN = [
    {
        "id": "a",
        "problem": "Compute the sum of the first ten positive odd integers, then add seven.",
        "answer": "107",
    },
    {"id": "b", "problem": "How many primes are less than 20?", "solution": "They are ... so \\boxed{8}."},
    {"id": "c", "problem": "A problem with no answer anywhere.", "solution": "We give up."},
    {"id": "d", "problem": "Which day of the week comes after Monday?", "answer": "9\\text{ a.m.}"},
    {"id": "e", "problem": "how many  primes are less than 20?", "answer": "8"},
    {
        "id": "f",
        "problem": "Let f be a function with f(x) = 3x + 1 for every real x. Find f(4) and report it.",
        "answer": "13",
    },
    {"id": "g", "problem": "Find the remainder when 2^10 is divided by 7.", "answer": "2"},
]
EVAL = [
    {
        "id": "e1",
        "problem": "Let f be a function with f(x) = 3x + 1 for every real x. What is f(5)?",
        "answer": "16",
    }
]


def _setup(tmp_path: Path, steps: str, **extra: str) -> Path:
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in TRAIN))
    (tmp_path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in EVAL))
    (tmp_path / "datasets.yaml").write_text(
        "datasets:\n  - {name: toy_eval, path: eval.jsonl, split: eval}\n  - {name: toy, path: train.jsonl}\n"
    )
    config = tmp_path / "prep.yaml"
    config.write_text(
        "sources: [toy]\ndatasets: datasets.yaml\neval_sets: [toy_eval]\n"
        f"output: out/train.jsonl\nsteps:\n{steps}" + "".join(f"{k}: {v}\n" for k, v in extra.items())
    )
    return config


def _prepare(config: Path, *args: str) -> int:
    """`rlvr data prepare` run from the config's directory, as a user would."""
    cwd = os.getcwd()
    os.chdir(config.parent)
    try:
        return main(["data", "prepare", str(config), *args])
    finally:
        os.chdir(cwd)


def _run(config: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    assert _prepare(config, "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_every_step_reports_counts_and_examples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    steps = "  - normalise\n  - gradability\n  - exact_dedup\n  - decontaminate: {n: 8}\n"
    report = _run(_setup(tmp_path, steps), capsys)
    by_step = {s["name"]: s for s in report["steps"]}
    assert (by_step["normalise"]["in"], by_step["normalise"]["out"]) == (7, 6)  # c has no answer at all
    assert by_step["normalise"]["examples"][0]["id"] == "toy:c"
    assert (by_step["gradability"]["in"], by_step["gradability"]["out"]) == (6, 5)  # "9 a.m." does not parse
    assert (by_step["exact_dedup"]["in"], by_step["exact_dedup"]["out"]) == (5, 4)  # e repeats b
    assert [e["id"] for e in by_step["decontaminate"]["examples"]] == ["toy:f"]  # shares an 8-gram with e1
    out = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert [r["id"] for r in out] == ["toy:a", "toy:b", "toy:g"]
    assert out[1]["answer"] == "8"  # taken from the solution's last \boxed{}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| normalise | 7 | 6 | 1 |" in md and "toy:c" in md
    removed = (tmp_path / "out" / "removed.jsonl").read_text().splitlines()
    assert len(removed) == 7 - 3


def test_difficulty_filter_keeps_the_band(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rates = {"toy:a": 0.1, "toy:b": 0.3, "toy:d": 0.6, "toy:e": 0.9}
    (tmp_path / "rates.jsonl").write_text(
        "".join(json.dumps({"id": k, "pass_rate": v}) + "\n" for k, v in rates.items())
    )
    steps = "  - difficulty: {pass_rates: rates.jsonl, lo: 0.2, hi: 0.625}\n"
    report = _run(_setup(tmp_path, steps), capsys)
    out = [json.loads(line)["id"] for line in (tmp_path / "out" / "train.jsonl").read_text().splitlines()]
    assert out == ["toy:b", "toy:d"]
    assert "3 problems had no pass rate (dropped)" in report["steps"][0]["note"]


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        ("  - shuffle\n", "unknown step"),
        ("  - difficulty: {lo: 0.2}\n", "needs `pass_rates:`"),
    ],
)
def test_bad_config_fails_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], steps: str, message: str
) -> None:
    assert _prepare(_setup(tmp_path, steps)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_bad_source_line_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = _setup(tmp_path, "  - normalise\n")
    with (tmp_path / "train.jsonl").open("a") as f:
        f.write('{"id": "z", "problem": 5, "answer": "1"}\n')
    assert _prepare(config) == 2
    err = capsys.readouterr().err
    assert "train.jsonl:8" in err and "problem" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.data
@pytest.mark.skipif(not os.environ.get("RLVR_DATA_DIR"), reason="RLVR_DATA_DIR is not set")
def test_deepscaler_preset_on_the_real_sources(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    preset = Path(__file__).resolve().parents[1] / "rlvr" / "recipes" / "data" / "deepscaler.yaml"
    start = time.monotonic()
    monkeypatch.chdir(tmp_path)
    assert main(["data", "prepare", str(preset), "--json"]) == 0
    assert time.monotonic() - start < 300
    report = json.loads(capsys.readouterr().out)
    decon = next(s for s in report["steps"] if s["name"] == "decontaminate")
    removed = [
        json.loads(line)
        for line in (tmp_path / "runs/data/deepscaler/removed.jsonl").read_text().splitlines()
    ]
    aime_vs_math500 = {
        r["id"]
        for r in removed
        if r["step"] == "decontaminate" and r["id"].startswith("aime_1983_2023:") and "math500" in r["why"]
    }
    # the 3 problems the two files share verbatim (../shared/data/README.md) are found, among near-verbatim copies
    shared = {
        "aime_1983_2023:aime-2017-II-7",
        "aime_1983_2023:aime-2015-II-6",
        "aime_1983_2023:aime-2010-I-6",
    }
    assert shared <= aime_vs_math500, aime_vs_math500
    assert decon["in"] > decon["out"]
