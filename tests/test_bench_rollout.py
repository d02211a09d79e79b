"""bench/rollout.py --model on a checkpoint directory: it loads the model in --dtype with its own tokenizer, runs
both engines on `words` prompts, and its last stdout line is the JSON summary with the speedup and the roofline."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from rlvr.models.tiny import build_tiny_pair

BENCH = Path(__file__).resolve().parent.parent / "bench" / "rollout.py"


def load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_rollout", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rollout_bench_runs_a_checkpoint_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model, tokenizer = build_tiny_pair()
    model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    argv = ["--model", str(tmp_path / "ckpt"), "--dtype", "bfloat16", "--prompts", "2", "--n", "3"]
    assert load_bench().main([*argv, "--max-new-tokens", "8", "--threads", "1"]) == 0
    summary = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert summary["model"] == str(tmp_path / "ckpt") and summary["dtype"] == "bfloat16"
    assert summary["sequences"] == 6 and summary["repeats"] == 1 and summary["peak_gbps_from"] == "measured"
    assert summary["mean_prompt_tokens"] > 50  # a words problem in the chat template, not a placeholder
    assert {r["tokens"] for r in summary["engines"].values()} == {6 * 8}
    assert summary["speedup"] > 0 and summary["peak_gbps"] > 0
    assert 0 < summary["roofline_fraction"] == summary["bandwidth"]["fast"]["fraction"] < 1
