"""The dataset registry and `rlvr data ls`, and the prompt templates."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from rlvr.cli import main
from rlvr.data import registry
from rlvr.data.templates import messages, render

REAL = os.environ.get("RLVR_DATA_DIR")
# record counts from ../shared/data/README.md
README_COUNTS = {
    "aime24": 30, "aime25": 30, "amc23": 40, "amc22_23": 83, "math500": 500, "minerva_math": 272,
    "olympiadbench": 675, "gsm8k": 1319, "math_train": 7500, "simplerl_math_l3to5": 8523, "gsm8k_train": 7473,
    "aime_1983_2023": 975,
}  # fmt: skip


def _ls(capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    assert main(["data", "ls", "--json", *extra]) == 0
    return {row["name"]: row for row in json.loads(capsys.readouterr().out)["datasets"]}


def test_registry_names_every_set_the_issue_asks_for() -> None:
    assert set(README_COUNTS) == set(registry.REGISTRY)
    assert {name: spec.records for name, spec in registry.REGISTRY.items()} == README_COUNTS
    assert all(
        spec.source.url.startswith("https://raw.githubusercontent.com/")
        for spec in registry.REGISTRY.values()
    )


def test_ls_reports_absent_and_damaged_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RLVR_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("RLVR_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "eval").mkdir()
    (tmp_path / "eval" / "aime24.jsonl").write_text('{"id": "1", "problem": "p", "answer": "1"}\n')
    lines = [json.dumps({"id": str(i), "problem": "p", "answer": "1"}) for i in range(40)]
    (tmp_path / "eval" / "amc23.jsonl").write_text("\n".join(lines) + "\n")
    rows = _ls(capsys)
    assert rows["aime24"]["state"] == "count differs: 1 records, expected 30"
    assert rows["amc23"]["state"] == "checksum differs" and rows["amc23"]["found_records"] == 40
    assert rows["math500"]["state"] == "absent" and not rows["math500"]["present"]


def test_user_datasets_are_listed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RLVR_DATA_DIR", raising=False)
    (tmp_path / "mine.jsonl").write_text('{"q": "1+1?", "a": 2}\n{"q": "2+2?", "a": 4}\n')
    config = tmp_path / "datasets.yaml"
    config.write_text("datasets:\n  - {name: mine, path: mine.jsonl, fields: {problem: q, answer: a}}\n")
    rows = _ls(capsys, "--datasets", str(config))
    assert rows["mine"]["present"] and rows["mine"]["found_records"] == 2


@pytest.mark.data
@pytest.mark.skipif(not REAL, reason="RLVR_DATA_DIR is not set")
def test_real_files_match_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    rows = _ls(capsys)
    for name, count in README_COUNTS.items():
        assert rows[name]["state"] == "ok", (name, rows[name]["state"])
        assert rows[name]["found_records"] == count


# -- templates -------------------------------------------------------------------------------------------------------


class FakeTokenizer:
    chat_template = "fake"

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> str:
        assert kwargs == {"tokenize": False, "add_generation_prompt": True}
        return "".join(f"<{m['role']}>{m['content']}</{m['role']}>" for m in conversation) + "<assistant>"


def test_r1_zero_template_is_verbatim() -> None:
    assert render("r1_zero", "What is 2+3?") == (
        "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. The "
        "assistant first thinks about the reasoning process in the mind and then provides the user with the answer. "
        "The reasoning process and answer are enclosed within <think> </think> and <answer> </answer> tags, "
        "respectively, i.e., <think> reasoning process here </think> <answer> answer here </answer>. "
        "User: What is 2+3?. Assistant:"
    )


def test_chat_templates_go_through_the_tokenizer() -> None:
    tok = FakeTokenizer()
    assert render("deepscaler", "Q?", tok) == (
        "<user>Q? Let's think step by step and output the final answer within \\boxed{}.</user><assistant>"
    )
    assert messages("qwen_math", "Q?")[0] == {
        "role": "system",
        "content": "Please reason step by step, and put your final answer within \\boxed{}.",
    }
    assert messages("simplerl", "Q?") == [
        {"role": "system", "content": "You are a helpful assistant."},
        {
            "role": "user",
            "content": "Q?\nPlease reason step by step, and put your final answer within \\boxed{}.",
        },
    ]


def test_chat_template_required() -> None:
    tok = FakeTokenizer()
    tok.chat_template = None  # type: ignore[assignment]
    with pytest.raises(ValueError, match="has none"):
        render("qwen_math", "Q?", tok)
    with pytest.raises(ValueError, match="unknown template"):
        render("nope", "Q?")
