"""Knobs the trainer hands to a function that is tested on its own (sampling, the policy loss, clipping, the KL
estimator, the schedule, GAE, the evaluation): each reaches that function with the recipe's value, or changes the
update as it should. `RL_FIELDS` names, for every RLConfig field, the test that guards it (or why none is needed);
a field added without one fails `test_every_rl_field_has_a_guard`."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
import torch
from test_knobs import SPREAD, step_rows, weights
from test_rl import config, trainer

from rlvr.eval import accuracy as accuracy_module
from rlvr.train import critic as critic_module
from rlvr.train import update as update_module
from rlvr.train.optim import lr_at
from rlvr.train.rl import RLConfig

TESTS = Path(__file__).parent
ONE_STEP = "stages=[{steps: 1, max_new_tokens: 12, n: 8}]"


def calls_of(monkeypatch, owner, name):
    """Record the keyword arguments of every call to owner.name (which still runs)."""
    calls = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def test_sampling_knobs_reach_the_engine(digits, tmp_path, monkeypatch):
    t = trainer(config(digits, tmp_path / "run", ONE_STEP, "temperature=0.7", "top_p=0.9", "top_k=5"))
    calls = calls_of(monkeypatch, t.engine, "generate")
    t.train()
    params = calls[0][0][1]
    assert (params.temperature, params.top_p, params.top_k, params.n) == (0.7, 0.9, 5, 8)


def test_clip_knobs_reach_the_policy_loss(digits, tmp_path, monkeypatch):
    calls = calls_of(monkeypatch, update_module, "policy_loss")
    clip = ("clip_low=0.1", "clip_high=0.28", "dual_clip=2.5")
    trainer(config(digits, tmp_path / "run", SPREAD, ONE_STEP, *clip)).train()
    assert calls and all(
        (k["clip_low"], k["clip_high"], k["dual_clip"]) == (0.1, 0.28, 2.5) for _, k in calls
    )


def test_max_grad_norm_reaches_the_clipping(digits, tmp_path, monkeypatch):
    calls = calls_of(monkeypatch, torch.nn.utils, "clip_grad_norm_")
    trainer(config(digits, tmp_path / "run", SPREAD, ONE_STEP, "max_grad_norm=0.25")).train()
    assert calls and all(args[1] == 0.25 for args, _ in calls)


def test_entropy_bonus_changes_the_update(digits, tmp_path):
    runs = {}
    for coef in (0.0, 0.5):
        t = trainer(config(digits, tmp_path / str(coef), SPREAD, ONE_STEP, f"entropy_coef={coef}"))
        t.train()
        runs[coef] = weights(t)
    assert any(not torch.equal(a, b) for a, b in zip(runs[0.0], runs[0.5], strict=True))


def test_the_kl_estimator_is_the_one_asked_for(digits, tmp_path):
    two = "stages=[{steps: 2, max_new_tokens: 12, n: 8}]"
    kl = {}
    for name in ("k1", "k2", "k3"):
        trainer(config(digits, tmp_path / name, SPREAD, two, "kl_coef=0.01", f"kl_estimator={name}")).train()
        kl[name] = step_rows(tmp_path / name)[1]["train/kl_ref"]
    assert len(set(kl.values())) == 3 and kl["k2"] > 0 and kl["k3"] > 0


def test_the_schedule_knobs_set_each_steps_lr(digits, tmp_path):
    three = "stages=[{steps: 3, max_new_tokens: 12, n: 8}]"
    knobs = ("schedule=cosine", "warmup_steps=1", "min_lr_ratio=0.5", "lr=1e-3")
    trainer(config(digits, tmp_path / "run", SPREAD, three, *knobs)).train()
    logged = [r["train/lr"] for r in step_rows(tmp_path / "run")]
    expected = [lr_at(s, lr=1e-3, total=3, warmup=1, schedule="cosine", min_lr_ratio=0.5) for s in range(3)]
    assert logged == pytest.approx(expected, rel=1e-9) and logged[2] >= 0.5e-3


@pytest.mark.parametrize("mini_batches, epochs", [(1, 1), (2, 1), (2, 3)])
def test_mini_batches_and_epochs_set_the_optimizer_steps(digits, tmp_path, mini_batches, epochs):
    knobs = (f"mini_batches={mini_batches}", f"ppo_epochs={epochs}", "skip_idle_rows=false")
    t = trainer(config(digits, tmp_path / "run", SPREAD, ONE_STEP, *knobs))
    t.train()
    assert {float(s["step"]) for s in t.optimizer.state.values()} == {float(mini_batches * epochs)}


def test_evaluation_knobs_reach_the_evaluation(digits, tmp_path, monkeypatch):
    calls = calls_of(monkeypatch, accuracy_module, "heldout_accuracy")
    knobs = ("eval_problems=5", "eval_n=2", "eval_temperature=0.6", "eval_max_new_tokens=7", "eval_every=1")
    two = "stages=[{steps: 2, max_new_tokens: 12, n: 8}]"
    trainer(config(digits, tmp_path / "run", two, f"eval_data={digits}", *knobs)).train()
    assert len(calls) == 3  # before, and after each step (eval_every=1; the last is the after)
    for args, kwargs in calls:
        assert len(args[2]) == 5
        assert (kwargs["n"], kwargs["temperature"], kwargs["max_new_tokens"]) == (2, 0.6, 7)


def test_critic_knobs_reach_gae_and_the_value_loss(digits, tmp_path, monkeypatch):
    gae = calls_of(monkeypatch, critic_module, "gae")
    value = calls_of(monkeypatch, critic_module, "value_loss")
    knobs = ("advantage=gae", "gamma=0.9", "lam=0.8", "value_clip=0.3", "critic_lr=1e-4")
    t = trainer(config(digits, tmp_path / "run", SPREAD, ONE_STEP, *knobs))
    t.train()
    assert gae and all((k["gamma"], k["lam"]) == (0.9, 0.8) for _, k in gae)
    assert value and all(k["clip"] == 0.3 for _, k in value)
    assert {g["lr"] for g in t.critic.optimizer.param_groups} == {1e-4}


def test_a_different_seed_samples_differently(digits, tmp_path):
    groups = {}
    for seed in (0, 1):
        t = trainer(config(digits, tmp_path / str(seed), ONE_STEP, f"seed={seed}"))
        _, sampled, _ = t._collect(t.config.stages[0])
        groups[seed] = [(g.problem, [r.completion_ids for r in g.rollouts]) for g in sampled]
    assert groups[0] != groups[1]


# field -> the test that fails when the trainer ignores it ("file::name"), or why none is needed ("none: ...")
RL_FIELDS = {
    "model": "test_real_training.py::test_loads_by_name_with_its_own_chat_template",
    "tiny": "test_model_registry.py",
    "data": "test_knobs.py::test_dynamic_sampling_drops_all_equal_groups_and_tops_the_batch_up",
    "eval_data": "test_knobs_passed.py::test_evaluation_knobs_reach_the_evaluation",
    "template": "test_rl_logs.py::test_rewards_and_samples_see_the_prefix_then_the_completion",
    "reward": "test_reward_safety.py::test_a_run_with_hanging_crashing_and_hogging_rewards_trains_as_if_they_scored_zero",
    "final_form": "test_small_model_answers.py::test_training_rewards_use_final_form",
    "out_dir": "test_rl.py::test_a_few_steps_move_the_policy_and_log_every_metric",
    "engine": "test_old_logp.py::test_auto_recomputes_where_the_engine_may_differ",
    "rollout_dtype": "test_old_logp.py::test_auto_recomputes_where_the_engine_may_differ",
    "stages": "test_rl.py::test_a_stage_ends_early_on_a_plateau",
    "prompts_per_step": "test_knobs.py::test_dynamic_sampling_rounds_are_bounded_and_the_shortfall_logged",
    "temperature": "test_knobs_passed.py::test_sampling_knobs_reach_the_engine",
    "top_p": "test_knobs_passed.py::test_sampling_knobs_reach_the_engine",
    "top_k": "test_knobs_passed.py::test_sampling_knobs_reach_the_engine",
    "mini_batches": "test_knobs_passed.py::test_mini_batches_and_epochs_set_the_optimizer_steps",
    "ppo_epochs": "test_knobs_passed.py::test_mini_batches_and_epochs_set_the_optimizer_steps",
    "micro_batch_size": "none: must not change the update; test_rl.py::test_micro_batch_size_does_not_change_the_update",
    "skip_idle_rows": "test_rl.py::test_idle_rows_skip_the_forward_but_not_the_normaliser",
    "share_prompts": "test_precision.py::test_stored_old_logprobs_give_ratio_one_under_bf16_until_the_first_step",
    "old_logp": "test_old_logp.py::test_recompute_runs_only_the_rows_the_update_runs",
    "advantage": "test_knobs.py::test_each_advantage_estimator_reaches_the_update",
    "loss_agg": "test_rl.py::test_seq_mean_aggregation_differs_from_token_mean",
    "clip_low": "test_knobs_passed.py::test_clip_knobs_reach_the_policy_loss",
    "clip_high": "test_knobs_passed.py::test_clip_knobs_reach_the_policy_loss",
    "dual_clip": "test_knobs_passed.py::test_clip_knobs_reach_the_policy_loss",
    "kl_coef": "test_knobs.py::test_kl_in_the_reward_is_subtracted_and_logged",
    "kl_estimator": "test_knobs_passed.py::test_the_kl_estimator_is_the_one_asked_for",
    "kl_in": "test_knobs.py::test_kl_in_the_reward_is_subtracted_and_logged",
    "entropy_coef": "test_knobs_passed.py::test_entropy_bonus_changes_the_update",
    "critic_lr": "test_knobs_passed.py::test_critic_knobs_reach_gae_and_the_value_loss",
    "gamma": "test_knobs_passed.py::test_critic_knobs_reach_gae_and_the_value_loss",
    "lam": "test_knobs_passed.py::test_critic_knobs_reach_gae_and_the_value_loss",
    "value_clip": "test_knobs_passed.py::test_critic_knobs_reach_gae_and_the_value_loss",
    "critic_warmup": "test_ppo.py::test_critic_warmup_trains_only_the_critic_then_both",
    "dynamic_sampling": "test_knobs.py::test_dynamic_sampling_drops_all_equal_groups_and_tops_the_batch_up",
    "max_sample_rounds": "test_knobs.py::test_dynamic_sampling_rounds_are_bounded_and_the_shortfall_logged",
    "overlong": "test_knobs.py::test_the_overlong_filter_leaves_truncated_rows_without_gradient",
    "overlong_buffer": "test_knobs.py::test_soft_overlong_punishment_has_dapos_values",
    "skip_after": "test_knobs.py::test_difficulty_skips_prompts_solved_or_unsolved_in_their_last_visits",
    "skip_unsolved": "test_knobs.py::test_difficulty_skips_prompts_solved_or_unsolved_in_their_last_visits",
    "lr": "test_knobs_passed.py::test_the_schedule_knobs_set_each_steps_lr",
    "schedule": "test_knobs_passed.py::test_the_schedule_knobs_set_each_steps_lr",
    "warmup_steps": "test_knobs_passed.py::test_the_schedule_knobs_set_each_steps_lr",
    "min_lr_ratio": "test_knobs_passed.py::test_the_schedule_knobs_set_each_steps_lr",
    "weight_decay": "test_precision.py::test_rl_keeps_policy_reference_and_critic_in_param_dtype",
    "betas": "test_precision.py::test_rl_keeps_policy_reference_and_critic_in_param_dtype",
    "fused_adamw": "test_sharding.py::test_fsdp_trains_like_the_unsharded_run_and_resumes_exactly",
    "max_grad_norm": "test_knobs_passed.py::test_max_grad_norm_reaches_the_clipping",
    "max_bad_steps": "test_rl.py::test_non_finite_steps_are_skipped_then_stop_the_run",
    "eval_every": "test_knobs_passed.py::test_evaluation_knobs_reach_the_evaluation",
    "eval_problems": "test_knobs_passed.py::test_evaluation_knobs_reach_the_evaluation",
    "eval_n": "test_knobs_passed.py::test_evaluation_knobs_reach_the_evaluation",
    "eval_temperature": "test_knobs_passed.py::test_evaluation_knobs_reach_the_evaluation",
    "eval_max_new_tokens": "test_knobs_passed.py::test_evaluation_knobs_reach_the_evaluation",
    "save_every": "test_rl.py::test_resumed_run_repeats_the_uninterrupted_one",
    "keep_last": "test_rl.py::test_checkpoints_keep_adamw_moments_in_bf16_and_resume_widens_them",
    "checkpoint_optimizer": "test_rl.py::test_checkpoints_keep_adamw_moments_in_bf16_and_resume_widens_them",
    "sample_every": "test_rl_logs.py::test_samples_are_numbered_like_the_metrics",
    "reward_workers": "test_reward_safety.py::test_the_reward_knobs_reach_the_pool",
    "reward_timeout_s": "test_reward_safety.py::test_the_reward_knobs_reach_the_pool",
    "reward_memory_mb": "test_reward_safety.py::test_the_reward_knobs_reach_the_pool",
    "seed": "test_knobs_passed.py::test_a_different_seed_samples_differently",
    "device": "none: one device here (cpu); a GPU path is bench/gpu.py's",
    "dtype": "test_real_training.py::test_one_grpo_step_in_bf16_compute_moves_the_fp32_masters",
    "param_dtype": "test_precision.py::test_rl_keeps_policy_reference_and_critic_in_param_dtype",
    "gradient_checkpointing": "test_knobs.py::test_gradient_checkpointing_gives_the_same_update",
    "sharding": "test_sharding.py::test_fsdp_trains_like_the_unsharded_run_and_resumes_exactly",
    "tensorboard": "none: writes a side log only (metrics.jsonl is the record); the package is not a dependency",
}


def test_every_rl_field_has_a_guard():
    fields = {f.name for f in dataclasses.fields(RLConfig)}
    assert set(RL_FIELDS) == fields, (sorted(fields - set(RL_FIELDS)), sorted(set(RL_FIELDS) - fields))
    for field, guard in RL_FIELDS.items():
        for reference in re.findall(r"test_\w+\.py(?:::\w+)?", guard):
            path, _, name = reference.partition("::")
            text = (TESTS / path).read_text()
            assert not name or re.search(rf"^def {name}\(", text, re.M), f"{field}: no {reference}"
