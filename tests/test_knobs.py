"""Each trainer knob a recipe sets does what it says, checked against its effect (the batch, the reward, the update,
the prompts sampled), not by running the same code twice: a knob the trainer silently dropped fails here.
Rewards come from `graders_for_tests` (mixed groups whatever a random model writes, or all-equal ones on purpose)."""

from __future__ import annotations

import pytest
import torch
from test_rl import config, trainer

from rlvr.train import prepare as prepare_module
from rlvr.train import rl as rl_module
from rlvr.train.metrics import read_metrics

SPREAD = "reward=graders_for_tests:spread_reward"
ONE_STEP = "stages=[{steps: 1, max_new_tokens: 12, n: 8}]"


def weights(t) -> list[torch.Tensor]:
    return [p.detach().clone() for p in t.model.parameters()]


def step_rows(run_dir) -> list[dict]:
    return [r for r in read_metrics(run_dir / "metrics.jsonl") if "train/groups_sampled" in r]


# -- dynamic sampling ----------------------------------------------------------------------------------------------
def test_dynamic_sampling_drops_all_equal_groups_and_tops_the_batch_up(digits, tmp_path):
    t = trainer(
        config(
            digits, tmp_path / "run", "reward=graders_for_tests:flat_on_odd_reward", "dynamic_sampling=true",
            "max_sample_rounds=12",
        )
    )  # fmt: skip
    kept, sampled, _ = t._collect(t.config.stages[0])
    flat = [g for g in sampled if max(g.rewards) == min(g.rewards)]
    assert flat and all(int(t.problems[g.problem].answer) % 2 for g in flat)  # the odd answers' groups
    assert all(max(g.rewards) > min(g.rewards) for g in kept)
    assert len(kept) == 8 and len(sampled) > 8  # more rounds sampled, the batch exactly full


def test_dynamic_sampling_rounds_are_bounded_and_the_shortfall_logged(digits, tmp_path):
    t = trainer(
        config(
            digits, tmp_path / "run", "reward=graders_for_tests:zero_reward", "dynamic_sampling=true",
            "max_sample_rounds=2", "stages=[{steps: 2, max_new_tokens: 12, n: 8}]",
        )
    )  # fmt: skip
    t.train()
    rows = step_rows(tmp_path / "run")
    assert [r["train/groups_sampled"] for r in rows] == [24, 24]  # 8 prompts, then 2 more rounds of 8
    assert [r["train/groups_kept"] for r in rows] == [0, 0] and all(r["train/empty"] == 1 for r in rows)


def test_without_dynamic_sampling_all_equal_groups_are_kept(digits, tmp_path):
    t = trainer(config(digits, tmp_path / "run", "reward=graders_for_tests:flat_on_odd_reward"))
    kept, sampled, _ = t._collect(t.config.stages[0])
    assert len(kept) == len(sampled) == 8 and any(max(g.rewards) == min(g.rewards) for g in kept)


# -- overlong handling ----------------------------------------------------------------------------------------------
def test_the_overlong_filter_leaves_truncated_rows_without_gradient(digits, tmp_path, monkeypatch):
    """Four new tokens: most responses of the random model are cut at the budget; their rows leave the loss (and
    the update's token count), the others stay."""
    seen = []
    real = rl_module.prepare

    def spy(groups, *args):
        experience = real(groups, *args)
        seen.append(([t for g in groups for t in g.truncated], experience))
        return experience

    monkeypatch.setattr(rl_module, "prepare", spy)
    four = "stages=[{steps: 1, max_new_tokens: 4, n: 8}]"
    moved = {}
    for overlong in ("filter", "none"):
        t = trainer(config(digits, tmp_path / overlong, SPREAD, four, f"overlong={overlong}"))
        before = weights(t)
        t.train()
        moved[overlong] = any(not torch.equal(a, b) for a, b in zip(before, weights(t), strict=True))
    (truncated, filtered), (_, unfiltered) = seen
    assert 0 < sum(truncated) < len(truncated)
    loss_mask = filtered.rows(range(len(filtered)), torch.device("cpu"))["loss_mask"]
    for row, cut in enumerate(truncated):
        assert filtered.trained[row] == (not cut) and bool(loss_mask[row].any()) == (not cut)
    assert all(unfiltered.trained) and moved == {"filter": True, "none": True}


def test_soft_overlong_punishment_has_dapos_values(digits, tmp_path):
    """max_new_tokens 8, buffer 4, reward 0 otherwise: length L earns min(0, max(-1, (4 - L) / 4))."""
    t = trainer(
        config(
            digits, tmp_path / "run", "reward=graders_for_tests:zero_reward", "overlong=soft", "overlong_buffer=4",
            "stages=[{steps: 1, max_new_tokens: 8, n: 8}]",
        )
    )  # fmt: skip
    _, sampled, _ = t._collect(t.config.stages[0])
    lengths = [len(r.completion_ids) for g in sampled for r in g.rollouts]
    rewards = [x for g in sampled for x in g.rewards]
    assert rewards == [min(0.0, max(-1.0, (4 - n) / 4)) for n in lengths]
    assert any(-1 < x < 0 for x in rewards) or len(set(lengths)) == 1  # the slope, not only the step


# -- difficulty ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("unsolved", [False, True])
def test_difficulty_skips_prompts_solved_or_unsolved_in_their_last_visits(digits, tmp_path, unsolved):
    t = trainer(config(digits, tmp_path / "run", "skip_after=2", f"skip_unsolved={unsolved}"))
    for problem in range(40):
        rate = 1.0 if problem < 4 else 0.0 if problem < 10 else 0.5
        t.difficulty.record(problem, 0.0 if problem == 0 else rate)  # problem 0: solved only in the last one
        t.difficulty.record(problem, rate)
    seen = set(t._next_prompts(200))  # five epochs
    skipped = set(range(1, 4)) | (set(range(4, 10)) if unsolved else set())
    assert not seen & skipped and seen == set(range(40)) - skipped
    assert t.difficulty.counts()["difficulty/skipped"] == len(skipped)


def test_one_prompt_left_is_drawn_again_and_again(digits, tmp_path):
    """Every prompt but one skipped: the scan crosses epochs (the one left may lie early in one shuffle and late in
    the next) and still finds it; with none left, a one-line error."""
    t = trainer(config(digits, tmp_path / "run", "skip_after=1"))
    for problem in range(40):
        t.difficulty.record(problem, 0.5 if problem == 17 else 1.0)
    assert t._next_prompts(100) == [17] * 100
    t.difficulty.record(17, 1.0)
    with pytest.raises(RuntimeError, match="every training prompt is skipped"):
        t._next_prompts(1)


def test_each_step_records_every_sampled_prompts_pass_rate(digits, tmp_path):
    t = trainer(config(digits, tmp_path / "run", ONE_STEP, "skip_after=1"))
    t.train()
    (row,) = step_rows(tmp_path / "run")
    assert len(t.difficulty.history) == 8 and all(len(h) == 1 for h in t.difficulty.history.values())
    assert row["difficulty/seen"] == 8


# -- stages --------------------------------------------------------------------------------------------------------
def test_a_stage_resets_the_reference_and_the_optimizer_when_asked(digits, tmp_path):
    stages = (
        "stages=[{steps: 1, max_new_tokens: 12, n: 8}, "
        "{steps: 1, max_new_tokens: 12, n: 8, reset_reference: true, reset_optimizer: true}]"
    )
    t = trainer(
        config(digits, tmp_path / "run", SPREAD, stages, "kl_coef=0.01", "save_every=1", "keep_last=5")
    )
    t.train()
    from safetensors.torch import load_file

    after_stage_1 = load_file(tmp_path / "run" / "checkpoints" / "step-000001" / "model.safetensors")
    reference = dict(t.reference.lm.named_parameters())
    assert all(torch.equal(reference[name], value) for name, value in after_stage_1.items())
    steps = {float(state["step"]) for state in t.optimizer.state.values()}
    assert steps == {1.0}  # AdamW started afresh at stage 2 (without the reset: 2)


# -- KL in the reward ----------------------------------------------------------------------------------------------
def test_kl_in_the_reward_is_subtracted_and_logged(digits, tmp_path, monkeypatch):
    """β·Σ_t KL leaves each response's reward; train/kl_ref is the same KL per token (step 2: the policy moved)."""
    taken = []
    real = prepare_module.kl_into_rewards

    def spy(groups, policy, reference, config, device):
        before = [list(g.rewards) for g in groups]
        out = real(groups, policy, reference, config, device)
        drops = [
            b - a
            for g, rewards in zip(groups, before, strict=True)
            for a, b in zip(g.rewards, rewards, strict=True)
        ]
        taken.append((sum(drops), sum(len(r.completion_ids) for g in groups for r in g.rollouts)))
        return out

    monkeypatch.setattr(prepare_module, "kl_into_rewards", spy)
    two = "stages=[{steps: 2, max_new_tokens: 12, n: 8}]"
    t = trainer(
        config(digits, tmp_path / "run", SPREAD, two, "kl_coef=0.5", "kl_in=reward", "skip_idle_rows=false")
    )
    t.train()
    rows = step_rows(tmp_path / "run")
    assert rows[0]["train/kl_ref"] == 0.0 and taken[0][0] == 0.0  # the policy is the reference
    drop, tokens = taken[1]
    assert drop > 0 and rows[1]["train/kl_ref"] == pytest.approx(drop / 0.5 / tokens, rel=1e-4)


# -- advantage estimators ------------------------------------------------------------------------------------------
def expected_advantages(name: str, scores: torch.Tensor) -> torch.Tensor:
    """Each estimator's formula, written out for groups of 8 consecutive rows."""
    r = scores.view(-1, 8).double()
    centred = r - r.mean(dim=1, keepdim=True)
    if name == "grpo":
        return (centred / (r.std(dim=1, keepdim=True) + 1e-6)).flatten()
    if name == "dr_grpo":
        return centred.flatten()
    if name == "rloo":  # r minus the mean of the other 7
        return (r - (r.sum(dim=1, keepdim=True) - r) / 7).flatten()
    raise ValueError(name)


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"])
def test_each_advantage_estimator_reaches_the_update(digits, tmp_path, monkeypatch, name):
    seen = []
    real = rl_module.update

    def spy(policy, optimizer, experience, *args, **kwargs):
        tokens = [len(s) - n for s, n in zip(experience.sequences, experience.prompt_lens, strict=True)]
        seen.append((experience.scores.clone(), experience.advantages.clone(), torch.tensor(tokens).double()))
        return real(policy, optimizer, experience, *args, **kwargs)

    monkeypatch.setattr(rl_module, "update", spy)
    t = trainer(config(digits, tmp_path / name, SPREAD, ONE_STEP, f"advantage={name}"))
    t.train()
    ((scores, advantages, tokens),) = seen
    assert scores.std() > 0
    if name != "reinforce_pp_baseline":
        expected = expected_advantages(name, scores)
        torch.testing.assert_close(advantages.double(), expected, atol=1e-5, rtol=1e-5)
        return
    # REINFORCE++ with baseline: r - group mean, whitened over the batch's tokens: an increasing affine map of it
    centred = (scores.view(-1, 8) - scores.view(-1, 8).mean(dim=1, keepdim=True)).flatten().double()
    slope = float((advantages.double() - advantages.double().mean()) @ centred) / float(centred @ centred)
    fit = slope * centred + (advantages.double() - slope * centred).mean()
    assert slope > 0 and torch.allclose(advantages.double(), fit, atol=1e-5)
    assert abs(float(advantages.double() @ tokens) / float(tokens.sum())) < 1e-5  # mean 0 over the tokens


# -- paths every GPU recipe takes --------------------------------------------------------------------------------
def test_gradient_checkpointing_gives_the_same_update(digits, tmp_path):
    runs = {}
    for on in (False, True):
        t = trainer(config(digits, tmp_path / str(on), SPREAD, ONE_STEP, f"gradient_checkpointing={on}"))
        engaged = "is_activation_checkpointing"  # transformers >= 5.x; is_gradient_checkpointing before
        engaged = engaged if hasattr(type(t.model), engaged) else "is_gradient_checkpointing"
        assert getattr(t.model, engaged) == on  # engaged, so "the same update" is not trivially so
        before = weights(t)
        t.train()
        runs[on] = weights(t)
        assert any(not torch.equal(a, b) for a, b in zip(before, runs[on], strict=True))
    for a, b in zip(runs[False], runs[True], strict=True):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)  # AdamW magnifies rounding of tiny gradients


def test_reward_workers_give_the_same_rewards_and_update(digits, tmp_path):
    two = "stages=[{steps: 2, max_new_tokens: 12, n: 8}]"
    runs = {}
    for workers in (0, 2):
        t = trainer(config(digits, tmp_path / str(workers), SPREAD, two, f"reward_workers={workers}"))
        t.train()
        rows = step_rows(tmp_path / str(workers))
        runs[workers] = ([(r["train/reward_mean"], r["train/accuracy"]) for r in rows], weights(t))
    assert runs[0][0] == runs[2][0]
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[2][1], strict=True))
