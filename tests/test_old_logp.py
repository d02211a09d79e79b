"""π_old of an off-policy update: the engine's sampling log-probs when it samples in-process from the trained
weights (no second forward), a recompute over only the rows the update runs otherwise, and the gap between the
two logged every step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from rlvr.config import load_config
from rlvr.train import distributed
from rlvr.train import prepare as prepare_module
from rlvr.train.prepare import engine_old_logp
from rlvr.train.rl import RLConfig, Trainer

OFF_POLICY = ("mini_batches=2", "ppo_epochs=2", "micro_batch_size=8")


def trainer(digits: Path, out: Path, *extra: str) -> Trainer:
    args = [
        "model=tiny", f"data={digits}", "eval_data=null", f"out_dir={out}", "prompts_per_step=8",
        "stages=[{steps: 2, max_new_tokens: 12, n: 8}]", "lr=1e-3", "temperature=0.7", *extra,
    ]  # fmt: skip
    return Trainer(load_config(RLConfig, None, args), distributed.init("cpu"), resume=False, progress=False)


def test_auto_takes_the_engines_log_probs_as_pi_old_without_a_forward(
    digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = trainer(digits, tmp_path / "run", *OFF_POLICY)
    assert t.engine_logp

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("old log-probs recomputed")

    monkeypatch.setattr(prepare_module, "store_logp", refuse)
    metrics = t._step(t.config.stages[0])
    # the engine's log-probs (at the sampling temperature) are the trainer's, within fp32 noise
    assert (
        0 <= metrics["train/logp_gap_max"] < 1e-4
        and metrics["train/logp_gap_mean"] <= metrics["train/logp_gap_max"]
    )
    assert metrics["train/rows_idle"] < 1


def test_recompute_runs_only_the_rows_the_update_runs(
    digits: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    t = trainer(digits, tmp_path / "run", *OFF_POLICY, "old_logp=recompute")
    assert not t.engine_logp
    seen: list[Any] = []
    store = prepare_module.store_logp

    def spy(model: Any, experience: Any, name: str, *args: Any, **kwargs: Any) -> None:
        store(model, experience, name, *args, **kwargs)
        seen.append(experience)

    monkeypatch.setattr(prepare_module, "store_logp", spy)
    metrics = t._step(t.config.stages[0])
    (experience,) = seen
    idle = experience.advantages == 0
    filled = torch.tensor([len(v) > 0 for v in experience.per_token["old_logp"]])
    assert idle.any() and (~idle).any()  # mixed: some groups all equal, some not
    assert torch.equal(filled, ~idle)  # idle rows never ran a forward
    for row in torch.nonzero(~idle)[:, 0].tolist():
        torch.testing.assert_close(
            experience.per_token["old_logp"][row],
            experience.per_token["sampling_logp"][row],
            atol=1e-4,
            rtol=0,
        )
    assert metrics["train/logp_gap_max"] < 1e-4


def test_auto_recomputes_where_the_engine_may_differ(digits: Path, tmp_path: Path) -> None:
    cpu = torch.device("cpu")

    def conf(*extra: str) -> RLConfig:
        return load_config(RLConfig, None, ["model=tiny", f"data={digits}", *extra])

    assert engine_old_logp(conf(), cpu)
    assert not engine_old_logp(conf("rollout_dtype=bfloat16"), cpu)  # a bf16 copy samples
    assert not engine_old_logp(conf("dtype=bfloat16"), cpu)  # the trainer computes in bf16
    assert not engine_old_logp(conf("engine=vllm"), cpu)
    assert engine_old_logp(conf("old_logp=engine", "dtype=bfloat16"), cpu)
    t = trainer(digits, tmp_path / "bf16", *OFF_POLICY, "rollout_dtype=bfloat16")
    metrics = t._step(t.config.stages[0])
    assert metrics["train/logp_gap_max"] > 1e-3  # what the switch guards against, measured
