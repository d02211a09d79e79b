"""`bench/gpu.py --smoke --json` runs every part on CPU with the tiny model: each part reports numbers, no part
records an error, greedy fast == hf, and stdout is only the JSON object."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# the figures each part must report, as finite numbers
FIGURES = {
    "bandwidth": ("gb_per_s", "fraction_of_peak"),
    "parity": ("logprob_gap_fp32", "logprob_gap_bf16", "logprob_gap_bf16_rollout_vs_autocast"),
    "train": ("tokens_per_s", "mfu", "seconds_per_step", "loss"),
    "train_checkpointed": ("tokens_per_s", "mfu", "seconds_per_step", "loss"),
    "rl_step": ("generate_s", "reward_s", "logprob_s", "update_s", "step_s", "generate_tokens_per_s"),
}
DECODE = ("tokens_per_s", "ms_per_step", "roofline_gb_per_s", "fraction_of_peak", "fraction_of_measured")


def finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_smoke_reports_every_part():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "bench/gpu.py", "--smoke", "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout[-2000:]  # --json: the object alone
    summary = json.loads(lines[0])
    parts = summary["parts"]
    assert set(parts) == {*FIGURES, "decode"}
    for name, part in parts.items():
        assert "error" not in part, (name, part["error"])
        assert finite(part["part_seconds"])
    for name, keys in FIGURES.items():
        for key in keys:
            assert finite(parts[name][key]), (name, key, parts[name].get(key))
    batches = [key for key in parts["decode"] if key.startswith("batch_")]
    assert batches == ["batch_8", "batch_16"]
    for batch in batches:
        for key in DECODE:
            assert finite(parts["decode"][batch][key]), (batch, key)
    assert parts["parity"]["greedy_equal"] is True
    assert parts["parity"]["logprob_gap_fp32"] < 1e-4  # fp32 engine vs fp32 forward: rounding only
    assert parts["train"]["gradient_checkpointing"] is False
    assert parts["train_checkpointed"]["gradient_checkpointing"] is True
    assert parts["train"]["loss"] == parts["train_checkpointed"]["loss"]  # recomputing changes nothing
