"""bench/rl_step.py's real-model path (`--model DIR`) on a tiny checkpoint: one step of rlvr's Trainer and one of
TRL's GRPOTrainer, bf16 on both sides, and the JSON summary's fields. Skipped without TRL (the `bench` extra)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from rlvr.models.checkpoint import save_checkpoint
from rlvr.models.tiny import build_tiny_pair

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_rl_step_runs_a_checkpoint_directory_on_both_sides(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("trl")
    monkeypatch.syspath_prepend(str(BENCH))  # rl_step imports its sibling rl_step_trl
    import rl_step

    model, tokenizer = build_tiny_pair(
        seed=0
    )  # its tokenizer has a chat template: the `plain` template renders
    path = save_checkpoint(model, tokenizer, tmp_path / "tiny")
    args = ["--model", str(path), "--dtype", "bfloat16", "--prompts", "2", "--n", "2"]
    args += ["--max-new-tokens", "8", "--micro-batch-size", "2", "--steps", "1", "--warmup", "0", "--json"]
    try:
        assert rl_step.main(args) == 0
    finally:
        sys.modules.pop("rl_step", None)
        sys.modules.pop("rl_step_trl", None)
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["model"] == str(path) and summary["data"] == "words" and summary["dtype"] == "bfloat16"
    assert summary["stop_at_eos"] and summary["skip_idle_rows"]  # the real-model defaults
    assert summary["sequences"] == 4 and summary["steps"] == 1
    assert math.isfinite(summary["speedup"]) and summary["speedup"] > 0
    for name in ("rlvr", "trl"):
        side = summary["sides"][name]
        assert 4 <= side["tokens"] <= 4 * 8, name  # every sequence has at least one token, at most 8
        assert 0.0 <= side["correct"] <= 1.0
        for phase in ("generate_s", "reward_s", "logprob_s", "update_s"):
            assert math.isfinite(side[phase]) and side[phase] >= 0.0, (name, phase)
        assert side["generate_s"] > 0 and side["seconds"] >= side["generate_s"]
