"""The synthetic arithmetic task: worked solutions, seeding, the train/test split, and its place in the registry."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
from pathlib import Path
from typing import Any

import pytest

from rlvr.cli import main
from rlvr.data import registry
from rlvr.data.readers import write_problems
from rlvr.data.synthetic import in_test, make_problem, make_problems, worked_solution
from rlvr.rewards.math import verify

LINE = re.compile(r"(\d)\+(\d)(\+1)?=(\d+)")


@pytest.fixture
def no_data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("RLVR_DATA_DIR", raising=False)
    monkeypatch.setenv("RLVR_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


def _operands(problem: str) -> tuple[int, int]:
    a, b = problem.split("+")
    return int(a), int(b)


def test_worked_solutions_by_hand() -> None:
    assert worked_solution(457, 68) == "<think>7+8=15\n5+6+1=12\n4+0+1=5\n</think><answer>525</answer>"
    assert worked_solution(999, 1) == "<think>9+1=10\n9+0+1=10\n9+0+1=10\n</think><answer>1000</answer>"
    assert worked_solution(0, 0) == "<think>0+0=0\n</think><answer>0</answer>"
    assert worked_solution(3, 52) == "<think>3+2=5\n0+5=5\n</think><answer>55</answer>"
    p = make_problem(7, 715, "train", 4)
    assert (p.id, p.problem, p.answer, p.source, p.level) == ("arith-train-4", "7+715", "722", "synthetic", 3)
    assert p.solution == "<think>7+5=12\n0+1+1=2\n0+7=7\n</think><answer>722</answer>"


def test_every_line_follows_from_its_column_and_the_line_above() -> None:
    for p in make_problems("train", 3000, seed=5):
        a, b = _operands(p.problem)
        assert p.solution is not None
        think = p.solution.removeprefix("<think>").split("</think>")[0]
        lines = think.split("\n")
        assert lines[-1] == ""  # every line ends in a newline
        width = max(len(str(a)), len(str(b)))
        assert len(lines) - 1 == width == p.level
        carry = 0
        for i, line in enumerate(lines[:-1]):
            m = LINE.fullmatch(line)
            assert m, line
            assert int(m[1]) == a // 10**i % 10 and int(m[2]) == b // 10**i % 10
            assert bool(m[3]) == bool(carry)
            assert int(m[4]) == int(m[1]) + int(m[2]) + carry
            carry = int(m[4]) // 10
        answer = lines[-2].split("=")[1] + "".join(line.split("=")[1][-1] for line in reversed(lines[:-2]))
        assert answer == p.answer == str(a + b)


def test_operands_and_levels() -> None:
    problems = make_problems("train", 2000, seed=3, max_digits=4)
    pairs = [_operands(p.problem) for p in problems]
    assert all(0 <= x < 10_000 for pair in pairs for x in pair)
    assert {p.level for p in problems} == {1, 2, 3, 4}
    assert all(p.level == max(len(str(a)), len(str(b))) for p, (a, b) in zip(problems, pairs, strict=True))
    assert all(p.problem == f"{a}+{b}" for p, (a, b) in zip(problems, pairs, strict=True))


def test_same_seed_same_problems_other_seed_other_problems() -> None:
    first = [p.to_dict() for p in make_problems("train", 500, seed=1)]
    assert first == [p.to_dict() for p in make_problems("train", 500, seed=1)]
    assert first != [p.to_dict() for p in make_problems("train", 500, seed=2)]
    # pinned, so that a change of generator (or of Python's random) shows here and not in a training curve
    assert [p.problem for p in make_problems("train", 3)] == ["782+33", "46+372", "62+554"]
    assert [p.problem for p in make_problems("test", 2)] == ["984+911", "50+44"]


def test_train_and_test_are_disjoint_and_free_of_duplicates() -> None:
    for seed in (0, 1):
        train = [_operands(p.problem) for p in make_problems("train", 4000, seed=seed)]
        test = [_operands(p.problem) for p in make_problems("test", 1000, seed=seed)]
        assert len(set(train)) == len(train) and len(set(test)) == len(test)
        assert not any(in_test(a, b) for a, b in train)
        assert all(in_test(a, b) for a, b in test)
        # unordered: 68+457 never in train when 457+68 is in test
        assert not {tuple(sorted(t)) for t in train} & {tuple(sorted(t)) for t in test}
    share = sum(in_test(a, b) for a in range(300) for b in range(a, 300)) / (300 * 301 / 2)
    assert 0.09 < share < 0.11
    assert all(in_test(a, b) == in_test(b, a) for a in range(50) for b in range(50))


def test_small_spaces_run_out_with_a_clear_error() -> None:
    pairs = [(a, b) for a in range(10) for b in range(10)]
    n_test = sum(in_test(a, b) for a, b in pairs)
    assert 0 < n_test < 30
    assert len(make_problems("test", n_test, max_digits=1)) == n_test
    with pytest.raises(ValueError, match="distinct test problems"):
        make_problems("test", n_test + 1, max_digits=1)
    with pytest.raises(ValueError, match="split"):
        make_problems("dev", 1)
    with pytest.raises(ValueError, match="max_digits"):
        make_problems("train", 1, max_digits=0)


def test_every_solution_grades_correct_and_wrong_answers_do_not() -> None:
    problems = make_problems("train", 4000, seed=7) + make_problems("test", 1000, seed=7)
    for p in problems:
        assert p.solution is not None
        assert verify(p.solution, p.answer).correct, p
    for p in problems[:300]:
        assert p.solution is not None
        wrong = str(int(p.answer) + 1)
        assert not verify(p.solution, wrong).correct
        assert not verify(p.solution.replace(f"<answer>{p.answer}<", f"<answer>{wrong}<"), p.answer).correct


def test_solutions_are_short() -> None:
    lengths = [len(p.solution or "") for p in registry.load_dataset("arith")]
    assert 50 < statistics.mean(lengths) < 58
    assert max(lengths) == 61  # 3 columns of "x+y+1=ss\n", a 4-digit sum
    assert min(lengths) == 39  # "<think>x+y=s\n</think><answer>s</answer>"


def test_registered_sets_load_without_a_data_dir(no_data_dir: Path) -> None:
    test = registry.load_dataset("arith_test")
    assert len(test) == 500 and [p.id for p in test[:2]] == ["arith-test-0", "arith-test-1"]
    train = registry.load_dataset("arith")
    assert len(train) == 20000 and train[-1].id == "arith-train-19999"
    assert "arith_test" not in registry.EVAL_SETS and "arith" not in registry.TRAIN_SETS
    with pytest.raises(ValueError, match=r"RLVR_DATA_DIR.*rlvr data fetch math500"):
        registry.load_dataset("math500")


def test_registered_checksum_is_that_of_the_written_file(tmp_path: Path) -> None:
    problems = registry.load_dataset("arith_test")
    write_problems(problems, tmp_path / "arith_test.jsonl")
    digest = registry.file_digest(tmp_path / "arith_test.jsonl")
    assert digest == registry.records_digest(problems) == (registry.GENERATED["arith_test"].sha256, 500)


def _ls(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["data", "ls", "--json"]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)["datasets"]}


def test_ls_lists_generated_sets_as_ok(no_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = _ls(capsys)
    for name, count in (("arith", 20000), ("arith_test", 500)):
        row = rows[name]
        assert row["state"] == "ok" and row["present"] and row["generated"] and row["path"] is None
        assert row["found_records"] == count and row["checksum_ok"] is True
    assert rows["math500"]["state"] == "absent" and not rows["math500"]["generated"]


def test_ls_notices_a_generator_that_changed(
    no_data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = registry.GENERATED["arith_test"]
    changed = dataclasses.replace(spec, generator=lambda: make_problems("test", 500, seed=1))
    monkeypatch.setitem(registry.GENERATED, "arith_test", changed)
    assert _ls(capsys)["arith_test"]["state"] == "checksum differs"
    shorter = dataclasses.replace(spec, generator=lambda: make_problems("test", 499))
    monkeypatch.setitem(registry.GENERATED, "arith_test", shorter)
    assert _ls(capsys)["arith_test"]["state"] == "count differs: 499 records, expected 500"


def test_show_and_fetch(no_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["data", "show", "arith", "--n", "1"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "arith-train-0" and shown["problem"] == "782+33" and shown["answer"] == "815"
    assert main(["data", "fetch", "arith"]) == 0
    assert "nothing to fetch" in capsys.readouterr().out


def test_prepare_takes_a_generated_source(no_data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = no_data_dir / "prep.yaml"
    config.write_text(
        "sources: [arith_test]\nsteps: [normalise, gradability, exact_dedup]\noutput: out/t.jsonl\n"
    )
    cwd = os.getcwd()
    os.chdir(no_data_dir)
    try:
        assert main(["data", "prepare", str(config), "--json"]) == 0
    finally:
        os.chdir(cwd)
    report = json.loads(capsys.readouterr().out)
    assert report["records"] == 500 and [s["removed"] for s in report["steps"]] == [0, 0, 0]
    first = json.loads((no_data_dir / "out" / "t.jsonl").read_text().split("\n")[0])
    assert first["id"] == "arith_test:arith-test-0" and first["source"] == "synthetic"
