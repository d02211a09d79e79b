"""`rlvr grade`: each generation format on tiny files, stored vs rlvr vs adjudicated accuracy, errors, real data."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from rlvr.eval import grade
from rlvr.eval.generations import GenerationFormatError, default_graders_dir, find_labeled_files
from rlvr.eval.grade import FileGrade, grade_files

ROOT = Path(__file__).resolve().parents[1]


def rlvr_grade(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """`rlvr grade ARGV` as the CLI runs it; returns stdout."""
    parser = argparse.ArgumentParser()
    grade.add_arguments(parser)
    assert grade.run(parser.parse_args(argv)) == 0
    return capsys.readouterr().out


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def harness(tmp_path: Path) -> Path:
    """3 problems; the stored label of problem 1 is wrong (the harness failed on the thousands separator)."""
    path = write_jsonl(
        tmp_path / "m__math500.jsonl",
        [
            {"idx": 0, "answer": "5", "gt": "5", "code": ["so \\boxed{5}"], "score": [True]},
            {"idx": 1, "answer": "10080", "gt": "10080", "code": ["\\boxed{10,\\!080}"], "score": [False]},
            {"idx": 2, "answer": 27.0, "gt": "27", "code": ["\\boxed{26}"], "score": [False]},
        ],
    )
    (tmp_path / "m__math500_metrics.json").write_text(json.dumps({"num_samples": 3, "acc": 33.3}))
    return path


def test_every_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tools = tmp_path / "tools.json"
    tools.write_text(
        json.dumps(
            {
                "What is 2+3?": {
                    "answer": "5",
                    "unique_id": "t/1",
                    "responses": {"0.0": {"content": "\\boxed{5}", "correctness": True}},
                },
                "What is 2+2?": {
                    "answer": "4",
                    "unique_id": "t/2",
                    "responses": {"0.0": {"content": "\\boxed{5}", "correctness": False}},
                },
            }
        )
    )
    aime = write_jsonl(
        tmp_path / "aime.jsonl",
        [
            {
                "id": 60,
                "gold_answer": "204",
                "generated_responses": ["<think>hm</think> \\boxed{204}", "<think>\\boxed{204}"],
                "answers_correctness": [True, True],  # the second never closed its think block
            }
        ],
    )
    plain = write_jsonl(
        tmp_path / "plain.jsonl",
        [{"response": "\\boxed{0.5}", "answer": "\\frac{1}{2}"}, {"response": "x", "answer": 3}],
    )
    samples = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {
                "problem_id": "p",
                "sample_index": i,
                "text": f"\\boxed{{{i}}}",
                "answer": "1",
                "correct": i == 1,
            }
            for i in range(4)
        ],
    )
    out = rlvr_grade(
        [str(p) for p in (harness(tmp_path), tools, aime, plain, samples)]
        + ["--json", "--workers", "0", "--root", str(tmp_path)],
        capsys,
    )
    report = json.loads(out)  # --json: stdout is exactly one object
    rows = {r["file"]: r for r in report["files"]}
    assert list(rows) == ["m__math500.jsonl", "tools.json", "aime.jsonl", "plain.jsonl", "samples.jsonl"]
    got = {
        name: (r["format"], r["records"], r["samples"], r["rlvr"], r["stored"], r["disagreements"])
        for name, r in rows.items()
    }
    assert got == {
        "m__math500.jsonl": ("harness", 3, 3, 2 / 3, 1 / 3, 1),
        "tools.json": ("skythought_tools", 2, 2, 1 / 2, 1 / 2, 0),
        "aime.jsonl": ("aime_preview", 1, 2, 1 / 2, 1.0, 1),
        "plain.jsonl": ("plain", 2, 2, 1 / 2, None, 0),
        "samples.jsonl": ("rlvr_samples", 4, 4, 1 / 4, 1 / 4, 0),
    }
    assert rows["m__math500.jsonl"]["published"] == pytest.approx(0.333)
    assert rows["m__math500.jsonl"]["diff_points"] == pytest.approx(100 / 3)
    assert rows["aime.jsonl"]["diff_points"] == pytest.approx(-50.0)
    assert rows["plain.jsonl"]["diff_points"] is None
    assert rows["tools.json"]["adjudicated"] is None  # no table given
    total = report["total"]
    assert (total["samples"], total["correct"], total["records"]) == (13, 6, 12)
    assert total["stored"] is None  # plain.jsonl has no labels


def test_adjudicated_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = harness(tmp_path)
    table = write_jsonl(
        tmp_path / "adj.jsonl",
        [
            {
                "file": "m__math500.jsonl",
                "record_id": "1",
                "label": False,
                "adjudicated": True,
                "reason": "10,080",
            }
        ],
    )
    out = rlvr_grade(
        [str(path), "--adjudicated", str(table), "--root", str(tmp_path), "--workers", "1"], capsys
    )
    header, line = out.splitlines()
    assert header.split() == [
        "file",
        "records",
        "samples",
        "rlvr",
        "stored",
        "diff",
        "published",
        "adjudicated",
        "disagree",
        "explained",
    ]
    assert line.split() == [
        "m__math500.jsonl",
        "3",
        "3",
        "66.67%",
        "33.33%",
        "+33.33",
        "33.30%",
        "66.67%",
        "1",
        "1",
    ]


def test_names_outside_the_root_are_paths_as_given(tmp_path: Path) -> None:
    path = harness(tmp_path)
    (result,) = grade_files([path], root=tmp_path / "elsewhere", workers=0)
    assert result.file == str(path)
    (result,) = grade_files([path], root=tmp_path, workers=0)
    assert result.file == "m__math500.jsonl"


def test_bad_line_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = harness(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"response": "\\\\boxed{1}", "answer": "1"}\n{"response": 1, "answer": "1"}\n')
    with pytest.raises(GenerationFormatError, match=r"bad.jsonl:2: bad plain record"):
        rlvr_grade([str(good), str(bad), "--workers", "0"], capsys)
    assert capsys.readouterr().out == ""  # every file is read before anything is graded or printed
    with pytest.raises(FileNotFoundError, match="no adjudication file"):
        rlvr_grade([str(good), "--adjudicated", str(tmp_path / "missing.jsonl")], capsys)


# --- the real files: rlvr against the stored labels -------------------------------------------------------


@pytest.mark.data
def test_real_files_agree_with_stored_or_adjudicated_accuracy() -> None:
    """Per file, rlvr is within 0.5 point of the stored accuracy, or every sample where the two disagree has been
    adjudicated by hand (bench/adjudication.jsonl says which grader is wrong there)."""
    root = default_graders_dir()
    if not root.is_dir():
        pytest.skip(f"no graders data at {root}")
    from rlvr.eval.generations import read_adjudication

    adjudication = read_adjudication(ROOT / "bench" / "adjudication.jsonl")
    results: list[FileGrade] = grade_files(find_labeled_files(root), root=root, adjudication=adjudication)
    assert (
        len(results) == 22
    )  # 19 SkyThought harness files, Qwen2.5-Math's math_cot_100, SkyThought tools, AIME
    for r in results:
        assert r.diff_points is not None and r.timeouts == 0
        assert abs(r.diff_points) <= 0.5 or r.explained == r.disagreements, r
        if r.published is not None:  # the stored labels are what the harness published (to its 1 decimal)
            assert r.stored is not None and abs(r.published - r.stored) < 0.0005 + 1e-9, r


def test_rlvr_samples_errors_name_the_line(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "samples.jsonl",
        [
            {"problem_id": 3, "sample_index": 0, "text": "\\boxed{1}", "answer": "1"},
            {"problem_id": 3, "sample_index": -1, "text": "\\boxed{1}", "answer": "1"},
        ],
    )
    with pytest.raises(
        GenerationFormatError, match=r"samples.jsonl:2: bad rlvr_samples record: 'sample_index'"
    ):
        grade_files([path], workers=0)
