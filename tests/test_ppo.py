"""PPO with a critic (advantage: gae): the value model's alignment and save/load, GAE advantages from the critic's
values, critic warm-up, and exact resume of a run with a critic."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
import torch

from rlvr.algos import whiten
from rlvr.config import load_config
from rlvr.models.tiny import build_tiny_model
from rlvr.models.value import ValueModel
from rlvr.train import checkpoint, distributed
from rlvr.train.experience import build_experience
from rlvr.train.metrics import read_metrics
from rlvr.train.rl import RLConfig, Trainer


def ppo(digits: Path, out: Path, *extra: str, resume: bool = False) -> Trainer:
    args = [
        "model=tiny", f"data={digits}", "eval_data=null", f"out_dir={out}", "prompts_per_step=8",
        "stages=[{steps: 3, max_new_tokens: 12, n: 4}]", "lr=1e-3", "critic_lr=1e-3", "micro_batch_size=12",
        "advantage=gae", "sample_every=0", *extra,
    ]  # fmt: skip
    return Trainer(load_config(RLConfig, None, args), distributed.init("cpu"), resume=resume, progress=False)


def test_value_model_aligns_values_with_the_tokens_they_choose_and_round_trips(tmp_path):
    lm = build_tiny_model(seed=1)
    critic = ValueModel.from_causal_lm(lm, seed=3)
    ids = torch.tensor([[5, 9, 11, 7, 3]])
    values = critic(ids, torch.ones_like(ids))  # (1, 5)
    hidden = lm.get_decoder()(input_ids=ids).last_hidden_state  # (1, 5, H)
    by_hand = critic.value_head(hidden).squeeze(-1)  # V after each token
    assert values[0, 0] == 0
    torch.testing.assert_close(values[:, 1:], by_hand[:, :-1])  # token t is chosen in the state after t - 1
    # right padding changes nothing at real positions
    padded = critic(torch.tensor([[5, 9, 11, 7, 3, 0, 0]]), torch.tensor([[1, 1, 1, 1, 1, 0, 0]]))
    torch.testing.assert_close(padded[:, :5], values, atol=1e-6, rtol=0)
    critic.save_pretrained(tmp_path / "critic")
    again = ValueModel.from_pretrained(tmp_path / "critic")
    torch.testing.assert_close(again(ids, torch.ones_like(ids)), values)
    with pytest.raises(FileNotFoundError, match="value_head"):
        ValueModel.from_pretrained(tmp_path)


def test_gae_advantages_come_from_the_critics_values(digits, tmp_path):
    """γ = λ = 1 and no KL: A_t = score − V_t before whitening, whitened over every completion token."""
    t = ppo(digits, tmp_path / "run", "lam=1.0")
    groups, _, _ = t._collect(t.config.stages[0])
    experience = build_experience(groups, t._advantages, "none")
    experience.scores = (
        torch.arange(len(experience)) % 3 - 1.0
    )  # varied rewards (a random model rarely scores)
    t.critic.prepare(experience, t.world)
    expected = whiten(
        torch.cat(
            [
                score - values
                for score, values in zip(experience.scores, experience.per_token["values"], strict=True)
            ]
        )
    )
    got = torch.cat(experience.per_token["advantages"])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert len(set(experience.per_token["advantages"][0].tolist())) > 1  # varies along a response
    returns = torch.cat(experience.per_token["returns"])
    lengths = torch.tensor([len(v) for v in experience.per_token["values"]])
    torch.testing.assert_close(returns, experience.scores.repeat_interleave(lengths), atol=1e-6, rtol=0)


def test_critic_warmup_trains_only_the_critic_then_both(digits, tmp_path):
    t = ppo(digits, tmp_path / "run", "critic_warmup=2", "kl_coef=0.01", "kl_in=reward", "kl_estimator=k1")
    policy = [p.detach().clone() for p in t.model.parameters()]
    critic = [p.detach().clone() for p in t.critic.model.parameters()]
    stage = t.config.stages[0]
    for _ in range(2):
        metrics = t._step(stage)
        t.step += 1
        assert metrics["train/policy_trained"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(policy, t.model.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(critic, t.critic.model.parameters(), strict=True))
    metrics = t._step(stage)
    assert metrics["train/policy_trained"] == 1.0
    assert any(not torch.equal(a, b) for a, b in zip(policy, t.model.parameters(), strict=True))
    for key in (
        "critic/value_loss",
        "critic/values",
        "critic/returns",
        "critic/explained_variance",
        "critic/grad_norm",
    ):
        assert math.isfinite(metrics[key]), key


def test_resumed_ppo_run_repeats_the_uninterrupted_one(digits, tmp_path):
    extra = (
        "kl_coef=0.01",
        "kl_in=reward",
        "kl_estimator=k1",
        "mini_batches=2",
        "save_every=1",
        "keep_last=5",
        "checkpoint_optimizer=float32",  # bit-exact resume
    )
    straight = ppo(digits, tmp_path / "a", *extra)
    straight.train()
    run_b = tmp_path / "b"
    ppo(digits, run_b, *extra).train()
    for path in checkpoint.checkpoints(run_b)[1:]:  # as if killed after step 1
        shutil.rmtree(path)
    shutil.rmtree(run_b / "final")
    assert (checkpoint.latest(run_b) / "critic" / "value_head.safetensors").exists()
    resumed = ppo(digits, run_b, *extra, resume=True)
    assert resumed.step == 1
    resumed.train()
    a = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "train/loss" in r]
    b = [r for r in read_metrics(run_b / "metrics.jsonl") if "train/loss" in r]
    drop = ("time/", "perf/", "mem/")
    assert [r["step"] for r in b] == [1, 2, 3]
    for ra, rb in zip(a, b, strict=True):
        assert {k: v for k, v in ra.items() if not k.startswith(drop)} == {
            k: v for k, v in rb.items() if not k.startswith(drop)
        }
    for x, y in zip(straight.critic.model.parameters(), resumed.critic.model.parameters(), strict=True):
        assert torch.equal(x, y)
