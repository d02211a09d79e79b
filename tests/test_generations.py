"""Readers of labeled generation files: each format on tiny files, error messages, and the real data set."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlvr.eval.generations import (
    GenerationFormatError,
    LabeledResponse,
    default_graders_dir,
    detect_format,
    find_labeled_files,
    read_adjudication,
    read_generations,
)


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def harness_record(
    idx: int, responses: list[str], labels: list[bool], answer: Any = "5", gt: str = "5"
) -> dict:
    return {
        "idx": idx,
        "question": "q",
        "gt": gt,
        "answer": answer,
        "code": responses,
        "pred": [],
        "score": labels,
    }


def test_harness_single_sample(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "evals" / "m__math500.jsonl",
        [
            harness_record(0, ["so \\boxed{5}"], [True], answer="x=5", gt="5"),
            harness_record(1, [""], [False], answer=27.0, gt="27"),
        ],
    )
    assert detect_format(path) == "harness"
    rows = read_generations(path, root=tmp_path)
    assert rows == [
        LabeledResponse("evals/m__math500.jsonl", "0", "so \\boxed{5}", "x=5", True, harness_gold="5"),
        LabeledResponse("evals/m__math500.jsonl", "1", "", "27", False, harness_gold="27"),
    ]


def test_harness_several_samples_get_sample_ids(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "maj.jsonl", [harness_record(7, ["a", "b", "c"], [True, False, True])])
    rows = read_generations(path)
    assert [r.record_id for r in rows] == ["7#0", "7#1", "7#2"]
    assert [r.label for r in rows] == [True, False, True]
    assert rows[0].file == str(path)


def test_skythought_tools(tmp_path: Path) -> None:
    data = {
        "What is 2+3?": {
            "problem": "What is 2+3?",
            "answer": "5",
            "unique_id": "test/algebra/1.json",
            "responses": {"0.0": {"content": "\\boxed{5}", "correctness": True, "reason": ""}},
        },
        "What is 2+2?": {
            "problem": "What is 2+2?",
            "answer": "4",
            "unique_id": "test/algebra/2.json",
            "responses": {"0.0": {"content": "\\boxed{5}", "correctness": False, "reason": "wrong"}},
        },
    }
    path = tmp_path / "model_MATH500.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert detect_format(path) == "skythought_tools"
    rows = read_generations(path, root=tmp_path)
    assert [(r.file, r.record_id, r.gold, r.label) for r in rows] == [
        ("model_MATH500.json", "test/algebra/1.json", "5", True),
        ("model_MATH500.json", "test/algebra/2.json", "4", False),
    ]


def test_aime_preview(tmp_path: Path) -> None:
    record: dict[str, Any] = {
        "question": "q",
        "generated_responses": ["<think>hm</think> \\boxed{204}"],
        "id": 60,
        "generated_answers": ["204"],
        "gold_answer": "204",
        "is_correct": True,
        "answers_correctness": [True],
    }
    path = write_jsonl(tmp_path / "aime.jsonl", [record])
    assert detect_format(path) == "aime_preview"
    (row,) = read_generations(path)
    assert (row.record_id, row.gold, row.label, row.response) == (
        "60",
        "204",
        True,
        record["generated_responses"][0],
    )


def test_plain_with_and_without_labels(tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "plain.jsonl",
        [{"response": "\\boxed{1}", "answer": "1", "label": True}, {"id": "b", "response": "x", "answer": 2}],
    )
    assert detect_format(path) == "plain"
    rows = read_generations(path)
    assert [(r.record_id, r.gold, r.label) for r in rows] == [("1", "1", True), ("b", "2", None)]


def test_find_labeled_files_skips_other_shapes(tmp_path: Path) -> None:
    harness = write_jsonl(tmp_path / "a" / "run.jsonl", [harness_record(0, ["r"], [True])])
    (tmp_path / "a" / "run_metrics.json").write_text(json.dumps({"num_samples": 1, "acc": 100.0}))
    write_jsonl(tmp_path / "cases.jsonl", [{"gold": "1", "pred": "1", "expected": 1}])
    write_jsonl(tmp_path / "unlabeled.jsonl", [{"response": "r", "answer": "1"}])
    labeled = write_jsonl(tmp_path / "z.jsonl", [{"response": "r", "answer": "1", "label": False}])
    (tmp_path / "notes.txt").write_text("hello")
    assert find_labeled_files(tmp_path) == [harness, labeled]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"response": "r", "answer": "1"}\n{not json\n', "bad.jsonl:2: invalid JSON"),
        ('{"response": "r", "answer": "1"}\n\n[1, 2]\n', "bad.jsonl:3: expected a JSON object"),
        (
            '{"response": "r", "answer": "1"}\n{"response": 3, "answer": "1"}\n',
            "bad.jsonl:2: bad plain record",
        ),
        ('{"response": "r", "answer": "1", "label": "yes"}\n', "bad.jsonl:1: bad plain record: 'label'"),
        (
            '{"idx": 0, "answer": "1", "code": ["a", "b"], "score": [true]}\n',
            "bad.jsonl:1: bad harness record: 2 responses",
        ),
        (
            '{"idx": 0, "answer": "1", "code": ["a"], "score": [true]}\n{"idx": 1, "code": [], "score": []}\n',
            "bad.jsonl:2: bad harness record: missing key 'answer'",
        ),
        ('{"idx": 0, "answer": "1", "code": ["a"], "score": [true]}\n' * 2, "duplicate record id '0'"),
        ('{"question": "q"}\n', "not a known generation format (first record has keys ['question'])"),
    ],
)
def test_malformed_input_names_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GenerationFormatError) as info:
        read_generations(path)
    assert message in str(info.value)


def test_skythought_tools_error_names_problem(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"What is 1+1?": {"answer": "2", "responses": {"0.0": {"content": "2"}}}}))
    with pytest.raises(GenerationFormatError, match=r"bad.json: problem 'What is 1\+1\?'.*'correctness'"):
        read_generations(path)


def test_adjudication(tmp_path: Path) -> None:
    assert read_adjudication(tmp_path / "missing.jsonl") == {}
    entry = {
        "file": "a.jsonl",
        "record_id": "3",
        "label": False,
        "adjudicated": True,
        "reason": "gold garbled",
    }
    table = read_adjudication(write_jsonl(tmp_path / "adj.jsonl", [entry]))
    assert table[("a.jsonl", "3")].adjudicated is True
    with pytest.raises(GenerationFormatError, match=r"dup.jsonl:2: duplicate adjudication"):
        read_adjudication(write_jsonl(tmp_path / "dup.jsonl", [entry, entry]))
    with pytest.raises(GenerationFormatError, match=r"bad.jsonl:1: bad adjudication entry: missing key"):
        read_adjudication(write_jsonl(tmp_path / "bad.jsonl", [{"file": "a.jsonl"}]))


def test_graders_dir_from_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RLVR_GRADERS_DIR", str(tmp_path))
    assert default_graders_dir() == tmp_path
    monkeypatch.delenv("RLVR_GRADERS_DIR")
    assert default_graders_dir() == Path(__file__).resolve().parents[1].parent / "shared" / "graders_data"


@pytest.mark.data
def test_real_graders_data_counts() -> None:
    root = default_graders_dir()
    if not root.is_dir():
        pytest.skip(f"no graders data at {root}")
    counts: dict[str, int] = {}
    for path in find_labeled_files(root):
        rows = read_generations(path, root=root)
        source = path.relative_to(root).parts[0]
        counts[source] = counts.get(source, 0) + len(rows)
        assert all(r.label is not None for r in rows)
    assert counts == {
        "skythought_qwen_math_eval": 2990,
        "qwen25math_rm_maj": 800,
        "skythought_tools": 500,
        "aime_preview_deepscaler": 30,
    }
