"""Training rewards that hang, kill their process, eat memory or raise: the pool scores them 0, counts them in the
step's metrics, loses and reorders nothing, and the run learns exactly what it learns when they score 0 politely."""

from __future__ import annotations

import time

import pytest
import torch
from test_rl import config, trainer

from rlvr.rewards.score import failure_kind, reward_pool
from rlvr.train.metrics import read_metrics

TRAP = "graders_for_tests:trap_reward"


def test_the_pool_scores_each_trap_zero_and_keeps_the_rest_in_order():
    pairs = [(f"the answer is {g}", g) for g in ["1", "7", "2", "8", "3", "9", "4"]]
    start = time.monotonic()
    with reward_pool(2, TRAP, final_form=False, timeout_s=1.0, memory_mb=2048) as pool:
        scores = pool.grade(pairs)
        assert pool.killed == 1 and pool.crashed == 1
    assert time.monotonic() - start < 30
    assert [s.reward for s in scores] == [1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 1.0]
    kinds = [None if s.failure is None else failure_kind(s.failure) for s in scores]
    assert kinds == [None, "timeouts", None, "crashes", None, "memory", None]


@pytest.fixture
def eight(tmp_path):
    """Eight one-digit problems, three of them traps (answers 7, 8, 9): a step of 8 prompts samples each once."""
    path = tmp_path / "eight.jsonl"
    path.write_text("".join(f'{{"id": "{a}", "problem": "{a}", "answer": "{a}"}}\n' for a in "12345789"))
    return path


def run_metrics(data, path, *extra):
    t = trainer(config(data, path, "stages=[{steps: 2, max_new_tokens: 8, n: 2}]", *extra))
    t.train()
    rows = [r for r in read_metrics(path / "metrics.jsonl") if "train/loss" in r]
    return rows, [p.detach().clone() for p in t.model.parameters()]


def test_a_run_with_hanging_crashing_and_hogging_rewards_trains_as_if_they_scored_zero(eight, tmp_path):
    trapped, trapped_weights = run_metrics(
        eight, tmp_path / "trap", f"reward={TRAP}", "reward_workers=2", "reward_timeout_s=1",
        "reward_memory_mb=2048",
    )  # fmt: skip
    polite, polite_weights = run_metrics(
        eight, tmp_path / "polite", "reward=graders_for_tests:trap_free_reward"
    )
    assert len(trapped) == len(polite) == 2
    for kind in ("timeouts", "crashes", "memory"):  # each trap prompt's 2 responses, every step
        assert [r[f"reward/{kind}"] for r in trapped] == [2, 2], kind
        assert [r[f"reward/{kind}"] for r in polite] == [0, 0], kind
    for a, b in zip(trapped, polite, strict=True):
        assert a["train/reward_mean"] == b["train/reward_mean"] and a["train/loss"] == b["train/loss"]
    assert all(torch.equal(a, b) for a, b in zip(trapped_weights, polite_weights, strict=True))


def test_a_reward_that_raises_scores_zero_in_process(digits, tmp_path):
    rows, _ = run_metrics(digits, tmp_path / "raise", "reward=graders_for_tests:raising_reward")
    assert sum(r["reward/errors"] for r in rows) > 0
    assert all(r["reward/timeouts"] == 0 for r in rows)


def test_an_unknown_reward_is_one_line_before_anything_loads(digits, tmp_path):
    with pytest.raises(ValueError, match="no_such_module"):
        trainer(config(digits, tmp_path / "x", "reward=no_such_module:f"))
    assert not (tmp_path / "x").exists()


def test_the_reward_knobs_reach_the_pool(digits, tmp_path):
    t = trainer(
        config(digits, tmp_path / "run", "reward_workers=1", "reward_timeout_s=2.5", "reward_memory_mb=1024")
    )
    try:
        assert (t.rewards.size, t.rewards.timeout_s, t.rewards.memory_mb) == (1, 2.5, 1024)
    finally:
        t.rewards.close()


def test_an_error_the_verifier_caught_is_counted(monkeypatch):
    """verify catches everything (a MemoryError past the worker's limit among them) into an "error:" verdict; the
    score counts it instead of passing it for a wrong answer."""
    from rlvr.rewards import score
    from rlvr.rewards.math import Verdict

    monkeypatch.setattr(score, "verify", lambda *a, **k: Verdict(False, None, "error: MemoryError: "))
    (result,) = reward_pool(
        0, "graders_for_tests:zero_reward", final_form=False, timeout_s=1, memory_mb=None
    ).grade([("x", "1")])
    assert result.reward == 0.0 and failure_kind(result.failure or "") == "memory"
