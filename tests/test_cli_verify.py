"""`rlvr verify` end to end: output in order, clear errors, --skip-bad, --json, atomic output; the README's commands."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from rlvr.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def _records(n: int) -> list[str]:
    return [
        json.dumps({"id": i, "response": f"so \\boxed{{{i}}}", "answer": i if i % 2 else str(i + 1)})
        for i in range(n)
    ]


def test_verify_writes_every_record_in_order(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "in.jsonl", _records(40))
    out = tmp_path / "out.jsonl"
    assert main(["verify", str(src), "-o", str(out), "--workers", "2", "--json"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == list(range(40))
    assert [r["correct"] for r in rows] == [i % 2 == 1 for i in range(40)]
    assert all(r["extracted"] == str(r["id"]) and r["reason"] for r in rows)
    summary = json.loads(capsys.readouterr().out)  # --json: stdout is exactly one object
    assert summary["total"] == 40 and summary["correct"] == 20 and summary["accuracy"] == 0.5


def test_final_form_flag_refuses_arithmetic_left_undone(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [json.dumps({"response": "The answer is 9 + 73.", "answer": "82"})])
    out = tmp_path / "out.jsonl"
    for flags, correct, reason in (([], True, "equal:math"), (["--final-form"], False, "unevaluated")):
        assert main(["verify", str(src), "-o", str(out), "--workers", "1", "--json", *flags]) == 0
        (row,) = [json.loads(line) for line in out.read_text().splitlines()]
        assert (row["correct"], row["reason"]) == (correct, reason)


def test_malformed_line_is_named_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = _write(tmp_path / "in.jsonl", [*_records(3), "{not json", *_records(2)])
    out = tmp_path / "out.jsonl"
    out.write_text("previous results\n")
    assert main(["verify", str(src), "-o", str(out), "--workers", "1"]) == 2
    assert f"{src}:4: invalid JSON" in capsys.readouterr().err
    assert out.read_text() == "previous results\n"  # the old output is untouched
    assert not list(tmp_path.glob(".out.jsonl.*"))  # and no temporary file is left behind


def test_missing_field_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "in.jsonl", [json.dumps({"response": "x", "gold": "1"})])
    assert main(["verify", str(src), "-o", str(tmp_path / "o.jsonl"), "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert f"{src}:1: missing field 'answer'" in err


def test_skip_bad_reports_and_skips(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(
        tmp_path / "in.jsonl",
        [*_records(2), "[1, 2]", json.dumps({"response": None, "answer": "1"}), *_records(1)],
    )
    out = tmp_path / "out.jsonl"
    assert main(["verify", str(src), "-o", str(out), "--workers", "1", "--skip-bad", "--json"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["skipped"] == 2
    assert f"{src}:3: expected a JSON object" in captured.err and f"{src}:4: field 'response'" in captured.err
    assert len(out.read_text().splitlines()) == 3


def test_custom_keys(tmp_path: Path) -> None:
    src = _write(tmp_path / "in.jsonl", [json.dumps({"completion": "\\boxed{\\frac12}", "gold": "0.5"})])
    out = tmp_path / "out.jsonl"
    assert (
        main(["verify", str(src), "-o", str(out), "--response-key", "completion", "--gold-key", "gold"]) == 0
    )
    assert json.loads(out.read_text())["correct"] is True


def test_readme_commands_are_the_ones_that_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The README's `rlvr verify` example runs as written, and .ci/run runs the README's test command."""
    readme = (ROOT / "README.md").read_text()
    main_job = re.search(r"(rlvr verify examples/\S+ -o \S+)", readme)
    assert main_job is not None
    argv = main_job.group(1).split()[1:]
    argv[argv.index("-o") + 1] = str(tmp_path / "graded.jsonl")
    argv[1] = str(ROOT / argv[1])
    assert main([*argv, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"] == len(
        (ROOT / "examples/responses.jsonl").read_text().splitlines()
    )
    assert "grep -m1 '# set-up + the tests' README.md" in (ROOT / ".ci/run").read_text()


def test_help_lists_the_command_and_its_options(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, expected in ((["--help"], "verify"), (["verify", "--help"], "--skip-bad")):
        with pytest.raises(SystemExit) as exit_:
            main(argv)
        assert exit_.value.code == 0 and expected in capsys.readouterr().out


def test_number_golds_and_overwritten_fields(tmp_path: Path) -> None:
    rows = [
        {"response": "\\boxed{27}", "answer": 27.0, "correct": "stale"},
        {"response": "\\boxed{5}", "answer": 5, "reason": "stale"},
        {"response": "\\boxed{0.0000001}", "answer": 1e-07},
    ]
    src = _write(tmp_path / "in.jsonl", [json.dumps(r) for r in rows])
    out = tmp_path / "out.jsonl"
    assert main(["verify", str(src), "-o", str(out), "--workers", "0", "--json"]) == 0
    graded = [json.loads(line) for line in out.read_text().splitlines()]
    assert [g["correct"] for g in graded] == [True, True, True]
    assert [g["answer"] for g in graded] == [27.0, 5, 1e-07]  # the input's own values are kept
    assert list(graded[0]) == ["response", "answer", "correct", "extracted", "reason"]


def test_an_error_midway_leaves_no_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(line.encode() for line in _records(3)) + b'\n{"response": "\xff"}\n')
    out = tmp_path / "out.jsonl"
    assert main(["verify", str(src), "-o", str(out), "--workers", "1"]) == 2
    assert f"{src}:4: not UTF-8" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [src]  # neither OUT nor a temporary file


def test_human_summary_and_output_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _write(tmp_path / "in.jsonl", _records(4))
    out = tmp_path / "out.jsonl"
    assert main(["verify", str(src), "-o", str(out), "--workers", "0"]) == 0
    printed = capsys.readouterr().out
    assert "graded 4 responses: 2 correct, 2 incorrect (accuracy 50.0%)" in printed and "calls/s" in printed
    umask = os.umask(0)
    os.umask(umask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask  # not the temporary file's private 0600
