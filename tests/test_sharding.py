"""FSDP2 (`sharding: fsdp`) on two CPU processes (gloo): the same run as without sharding — metrics, the saved
policy and critic — and a killed sharded run resumes exactly (optimizer shards restored from the whole state)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.train import checkpoint
from rlvr.train.metrics import read_metrics

ROOT = Path(__file__).resolve().parents[1]
DROP = ("time/", "perf/", "mem/")


def train(digits: Path, out: Path, sharding: str, *extra: str) -> None:
    """PPO with a critic and a reference model (KL in the reward), two mini-batches, evaluation: every sharded
    model and every gather path."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29547",
        "-m", "rlvr", "train", "model=tiny", f"data={digits}", f"eval_data={digits}", "eval_problems=8",
        f"out_dir={out}", "prompts_per_step=8", "stages=[{steps: 3, max_new_tokens: 12, n: 4}]", "lr=1e-3",
        "critic_lr=1e-3", "advantage=gae", "kl_coef=0.01", "kl_in=reward", "mini_batches=2", "save_every=1",
        "keep_last=5", f"sharding={sharding}", "--no-progress", "checkpoint_optimizer=float32", *extra,
        "old_logp=recompute",  # as sharded runs do: under auto an unsharded one would take the engine's
        "fused_adamw=false",  # as sharded parameters do: fused rounds differently (rlvr.train.optim.adamw)
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def rows(run: Path) -> list[dict]:
    return [
        {k: v for k, v in r.items() if not k.startswith(DROP)}
        for r in read_metrics(run / "metrics.jsonl")
        if "train/loss" in r
    ]


def weights(path: Path) -> dict[str, torch.Tensor]:
    return load_file(path / "model.safetensors")


def assert_same_weights(a: Path, b: Path) -> None:
    x, y = weights(a), weights(b)
    assert x.keys() == y.keys()
    for key in x:
        torch.testing.assert_close(x[key], y[key], atol=1e-6, rtol=0)


def test_fsdp_trains_like_the_unsharded_run_and_resumes_exactly(digits, tmp_path):
    plain, sharded = tmp_path / "plain", tmp_path / "fsdp"
    train(digits, plain, "none")
    train(digits, sharded, "fsdp")
    a, b = rows(plain), rows(sharded)
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        assert ra.keys() == rb.keys()
        for key in ra:
            # a clip fraction counts tokens: rounding (~1e-7 here) may move one across the boundary (1/165)
            tolerance = 0.01 if "clip" in key else 1e-6 * max(1.0, abs(ra[key]))
            assert abs(ra[key] - rb[key]) <= tolerance, (ra["step"], key)
    assert_same_weights(plain / "final", sharded / "final")  # gathered whole, in the Hugging Face layout
    last = checkpoint.latest(sharded)
    assert last is not None
    assert_same_weights(checkpoint.latest(plain) / "critic", last / "critic")

    for path in checkpoint.checkpoints(sharded)[1:]:  # killed after step 1
        shutil.rmtree(path)
    shutil.rmtree(sharded / "final")
    before = weights(checkpoint.latest(sharded))
    train(digits, sharded, "fsdp", "--resume")
    assert rows(sharded) == b
    assert_same_weights(plain / "final", sharded / "final")
    assert any(not torch.equal(v, weights(sharded / "final")[k]) for k, v in before.items())


def test_one_process_ignores_sharding_and_hf_engine_is_refused(digits, tmp_path):
    from rlvr.config import load_config
    from rlvr.train import distributed, sharding
    from rlvr.train.rl import RLConfig, Trainer

    args = ["model=tiny", f"data={digits}", "eval_data=null", "prompts_per_step=4", "sharding=fsdp",
            "stages=[{steps: 1, max_new_tokens: 8, n: 4}]"]  # fmt: skip
    t = Trainer(load_config(RLConfig, None, [*args, f"out_dir={tmp_path / 'a'}"]), distributed.init("cpu"),
                resume=False, progress=False)  # fmt: skip
    assert not sharding.has_shards(t.policy)  # no torchrun: nothing to shard, the run is a plain one
    assert t.train()["steps"] == 1
    with pytest.raises(ValueError, match="engine=fast or vllm"):
        Trainer(load_config(RLConfig, None, [*args, "engine=hf", f"out_dir={tmp_path / 'b'}"]),
                distributed.init("cpu"), resume=False, progress=False)  # fmt: skip
