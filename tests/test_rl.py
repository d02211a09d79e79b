"""The RL loop on a random tiny model: it learns (parameters move, metrics finite), micro-batching does not change
the update, stages switch, a resumed run repeats the uninterrupted one exactly, bad steps are skipped then stop
the run, and two processes run under torchrun."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from rlvr.config import load_config
from rlvr.train import checkpoint, distributed
from rlvr.train.experience import build_experience
from rlvr.train.metrics import read_metrics
from rlvr.train.optim import adamw
from rlvr.train.rl import RLConfig, Trainer
from rlvr.train.update import update

ROOT = Path(__file__).resolve().parents[1]


def config(digits: Path, out: Path, *extra: str) -> RLConfig:
    args = [
        "model=tiny", f"data={digits}", "eval_data=null", f"out_dir={out}", "prompts_per_step=8",
        "stages=[{steps: 3, max_new_tokens: 12, n: 8}]", "lr=1e-3", "micro_batch_size=64", "sample_every=1",
        *extra,
    ]  # fmt: skip
    return load_config(RLConfig, None, args)


def trainer(c: RLConfig, resume: bool = False) -> Trainer:
    return Trainer(c, distributed.init("cpu"), resume=resume, progress=False)


def test_a_few_steps_move_the_policy_and_log_every_metric(digits, tmp_path):
    t = trainer(config(digits, tmp_path / "run", "kl_coef=0.01"))
    before = [p.detach().clone() for p in t.model.parameters()]
    figures = t.train()
    assert figures["steps"] == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, t.model.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(before, t.reference.parameters(), strict=True))  # frozen
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "train/loss" in r]
    assert [r["step"] for r in rows] == [1, 2, 3]
    for key in (
        "train/reward_mean", "train/accuracy", "train/all_correct", "train/all_wrong", "train/response_length",
        "train/length_correct", "train/length_wrong", "train/truncated", "train/clip_low", "train/clip_high",
        "train/ppo_kl", "train/kl_ref", "train/entropy", "train/grad_norm", "train/lr", "time/generate",
        "time/reward", "time/logprob", "time/update", "perf/tokens_per_s", "mem/rollout_gb", "mem/logprob_gb",
        "mem/update_gb",
    ):  # fmt: skip
        assert all(r[key] is not None and math.isfinite(r[key]) for r in rows), key
    assert rows[-1]["train/kl_ref"] > 0  # the policy moved away from the reference
    assert (tmp_path / "run" / "final" / "model.safetensors").exists()
    assert checkpoint.latest(tmp_path / "run").name == "step-000003"
    samples = [json.loads(line) for line in (tmp_path / "run" / "samples.jsonl").read_text().splitlines()]
    assert {"step", "problem", "response", "reward", "correct"} <= set(samples[0])


def test_micro_batch_size_does_not_change_the_update(digits, tmp_path):
    """token-mean over the whole batch: 4 micro-batches of 16 give the update of 1 of 64 (rlvr's aggregation)."""
    params = []
    for size in (64, 16, 5):
        t = trainer(
            config(
                digits,
                tmp_path / f"m{size}",
                f"micro_batch_size={size}",
                "stages=[{steps: 1, max_new_tokens: 12, n: 8}]",
            )
        )
        t.train()
        params.append([p.detach().clone() for p in t.model.parameters()])
    for other in params[1:]:
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(params[0], other, strict=True))


def test_idle_rows_skip_the_forward_but_not_the_normaliser(digits, tmp_path):
    """Rows with advantage 0 (a group whose responses all scored the same) are left out of the forward and
    backward; the gradient is the one with every row run, because their tokens still count in token-mean.
    (Gradients, not parameters after AdamW: its first step is sign(g) · lr, which float noise in a ~0 entry
    flips.)"""
    t = trainer(config(digits, tmp_path / "run", "micro_batch_size=8"))
    groups, _, _ = t._collect(t.config.stages[0])
    experience = build_experience(groups, t._advantages, "none")

    def run(skip: bool) -> tuple[dict, list[torch.Tensor]]:
        """One update; the summed gradients at its optimizer step."""
        policy = copy.deepcopy(t.policy)
        optimizer = adamw(policy.lm, lr=1e-3, weight_decay=0.0, betas=(0.9, 0.999))
        grads: list[torch.Tensor] = []
        step = optimizer.step

        def spy() -> None:
            grads.extend(p.grad.clone() for p in policy.parameters())
            step()

        optimizer.step = spy  # type: ignore[method-assign]
        conf = dataclasses.replace(t.config, skip_idle_rows=skip)
        return update(policy, optimizer, experience, conf, t.world, 12, 0), grads

    results = {skip: run(skip) for skip in (True, False)}
    (skipping, with_skip), (running, without) = results[True], results[False]
    assert 0 < skipping["train/rows_idle"] < 1 and running["train/rows_idle"] == 0  # idle and mixed groups
    assert any(float(g.abs().max()) > 0 for g in without)
    for a, b in zip(with_skip, without, strict=True):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-5)
    assert skipping["train/loss"] == pytest.approx(running["train/loss"], abs=1e-7)


def test_an_all_idle_mini_batch_still_takes_its_optimizer_step(digits, tmp_path):
    """Every row idle: nothing runs, but AdamW steps on zero gradients (its moments decay, its step count grows),
    as it would have had the rows run."""
    t = trainer(config(digits, tmp_path / "run"))
    groups, _, _ = t._collect(t.config.stages[0])
    experience = build_experience(groups, t._advantages, "none")
    experience.advantages = torch.zeros(len(experience))
    metrics = update(t.policy, t.optimizer, experience, t.config, t.world, 12, 0)
    assert metrics["train/rows_idle"] == 1.0
    assert all(int(t.optimizer.state[p]["step"]) == 1 for p in t.model.parameters())


def test_seq_mean_aggregation_differs_from_token_mean(digits, tmp_path):
    """The aggregation knob reaches the update (else the test above could pass with any normaliser)."""
    a = trainer(config(digits, tmp_path / "a", "stages=[{steps: 1, max_new_tokens: 12, n: 8}]"))
    b = trainer(
        config(
            digits,
            tmp_path / "b",
            "stages=[{steps: 1, max_new_tokens: 12, n: 8}]",
            "loss_agg=seq-mean-token-mean",
        )
    )
    a.train(), b.train()
    assert any(
        not torch.allclose(x, y) for x, y in zip(a.model.parameters(), b.model.parameters(), strict=True)
    )


STAGED = (
    "stages=[{steps: 2, max_new_tokens: 8, n: 4}, {steps: 3, max_new_tokens: 12, n: 8, reset_reference: true, "
    "reset_optimizer: true}]"
)


def test_resumed_run_repeats_the_uninterrupted_one(digits, tmp_path):
    extra = (STAGED, "kl_coef=0.01", "dynamic_sampling=true", "skip_after=1", "save_every=1", "keep_last=10")
    extra = (*extra, "checkpoint_optimizer=float32")  # bit-exact resume
    straight = trainer(config(digits, tmp_path / "a", *extra))
    straight.train()
    run_b = tmp_path / "b"
    trainer(config(digits, run_b, *extra)).train()
    # as if killed after step 3 (inside stage 2): later checkpoints and the final model never written
    for path in checkpoint.checkpoints(run_b)[3:]:
        import shutil

        shutil.rmtree(path)
    import shutil

    shutil.rmtree(run_b / "final")
    resumed = trainer(config(digits, run_b, *extra), resume=True)
    assert (resumed.step, resumed.stage, resumed.stage_step) == (3, 1, 1)
    assert resumed.reference_path.endswith("reference-stage1")
    resumed.train()
    a = [r for r in read_metrics(tmp_path / "a" / "metrics.jsonl") if "train/loss" in r]
    b = [r for r in read_metrics(run_b / "metrics.jsonl") if "train/loss" in r]
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5]
    assert [r["train/max_new_tokens"] for r in b] == [8, 8, 12, 12, 12]
    drop = ("time/", "perf/", "mem/")
    for ra, rb in zip(a, b, strict=True):
        assert {k: v for k, v in ra.items() if not k.startswith(drop)} == {
            k: v for k, v in rb.items() if not k.startswith(drop)
        }
    assert all(
        torch.equal(x, y)
        for x, y in zip(straight.model.parameters(), resumed.model.parameters(), strict=True)
    )


def test_non_finite_steps_are_skipped_then_stop_the_run(digits, tmp_path, monkeypatch):
    t = trainer(
        config(
            digits,
            tmp_path / "run",
            "stages=[{steps: 8, max_new_tokens: 12, n: 8}]",
            "save_every=1",
            "max_bad_steps=2",
        )
    )
    from rlvr.train import update

    real = update.micro_loss

    def poisoned(model, *args, **kwargs):
        loss, stats, extra = real(model, *args, **kwargs)
        return (loss * float("nan") if t.step >= 2 else loss), stats, extra

    monkeypatch.setattr(update, "micro_loss", poisoned)
    with (
        warnings.catch_warnings(record=True) as caught,
        pytest.raises(RuntimeError, match="non-finite steps"),
    ):
        warnings.simplefilter("always")
        t.train()
    assert any("update skipped" in str(w.message) for w in caught)
    last = checkpoint.latest(tmp_path / "run")
    assert (
        last is not None and last.name == "step-000004"
    )  # skipped steps still checkpoint the unchanged model
    assert all(torch.isfinite(p).all() for p in t.model.parameters())


@pytest.mark.parametrize(
    "extra", [[], ["advantage=gae", "kl_coef=0.01", "kl_in=reward"]], ids=["grpo", "ppo"]
)
def test_two_processes_run_under_torchrun(digits, tmp_path, extra):
    out = tmp_path / "ddp"
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29541",
        "-m", "rlvr", "train", "model=tiny", f"data={digits}", "eval_data=null", f"out_dir={out}",
        "prompts_per_step=8", "stages=[{steps: 2, max_new_tokens: 12, n: 8}]", "lr=1e-3", "--no-progress", "--json",
        *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (
        figures["steps"] == 2 and figures["train/groups_sampled"] == 8
    )  # each process samples its 4 prompts; the metrics count both processes' groups
    assert len(list((out / "checkpoints" / "step-000002").glob("rng-*.pt"))) == 2
    if extra:  # the critic: advantages whitened over both processes, gradients summed across them
        assert math.isfinite(figures["critic/value_loss"]) and math.isfinite(
            figures["critic/explained_variance"]
        )
        assert (out / "checkpoints" / "step-000002" / "critic" / "value_head.safetensors").exists()


def test_a_stage_ends_early_on_a_plateau(digits, tmp_path):
    """plateau_patience: a stage whose train-accuracy EMA stops improving hands over to the next stage early."""
    stages = "stages=[{steps: 40, max_new_tokens: 8, n: 4, plateau_patience: 2}, {steps: 2, max_new_tokens: 12, n: 4}]"
    t = trainer(config(digits, tmp_path / "run", stages, "lr=0"))  # lr 0: nothing improves
    figures = t.train()
    rows = [r for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "train/loss" in r]
    lengths = [r["train/max_new_tokens"] for r in rows]
    assert lengths[-2:] == [12, 12] and 3 <= lengths.count(8) < 40
    assert figures["steps"] == len(rows)
    assert checkpoint.latest(tmp_path / "run") == checkpoint.step_dir(tmp_path / "run", len(rows))


def test_checkpoints_keep_adamw_moments_in_bf16_and_resume_widens_them(digits, tmp_path):
    """The default compact checkpoint: moments in bf16 (half the bytes), restored as the parameters' fp32 at the
    saved values' bf16 rounding; float32 keeps them whole (the bit-exact resume above)."""
    extra = ("stages=[{steps: 2, max_new_tokens: 12, n: 8}]", "save_every=1", "keep_last=5")
    trainer(config(digits, tmp_path / "exact", *extra, "checkpoint_optimizer=float32")).train()
    trainer(config(digits, tmp_path / "compact", *extra)).train()
    exact, compact = (
        torch.load(checkpoint.step_dir(tmp_path / run, 1) / "trainer.pt", weights_only=False)["optimizer"][
            "state"
        ]
        for run in ("exact", "compact")
    )
    moments = [(k, name) for k, entry in exact.items() for name in ("exp_avg", "exp_avg_sq")]
    for k, name in moments:
        assert exact[k][name].dtype == torch.float32 and compact[k][name].dtype == torch.bfloat16
        assert torch.equal(compact[k][name], exact[k][name].to(torch.bfloat16))
        assert torch.equal(compact[k]["step"], exact[k]["step"])
    run = tmp_path / "compact"
    for path in checkpoint.checkpoints(run)[1:]:
        shutil.rmtree(path)
    shutil.rmtree(run / "final")
    resumed = trainer(config(digits, run, *extra), resume=True)
    state = resumed.optimizer.state_dict()["state"]
    for k, name in moments:
        assert state[k][name].dtype == torch.float32
        assert torch.equal(state[k][name], compact[k][name].float())


def test_the_same_run_three_times_gives_the_same_weights(digits, tmp_path):
    """Bit-for-bit repeatable on two threads (resume and the chaos bench rely on it). It caught the shared-prompt
    log-probs indexing a prompt's last state once per response: indexing's backward sums repeated indices in
    thread order on a CPU (now `index_select`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        runs = []
        for k in range(3):
            one = "stages=[{steps: 1, max_new_tokens: 12, n: 8}]"
            t = trainer(config(digits, tmp_path / str(k), one, "reward=graders_for_tests:spread_reward"))
            t.train()
            runs.append([p.detach().clone() for p in t.model.parameters()])
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for run in runs[1:] for a, b in zip(runs[0], run, strict=True))


def test_a_nan_logit_skips_the_step_and_a_run_of_them_stops_with_the_checkpoint_intact(digits, tmp_path):
    """NaN in the hidden states the update's logits come from (rollouts stay finite): each such step is skipped
    with a warning and leaves the weights alone; past max_bad_steps the run stops, its last checkpoint loadable."""
    t = trainer(
        config(
            digits, tmp_path / "run", "reward=graders_for_tests:spread_reward", "save_every=1", "max_bad_steps=1",
            "stages=[{steps: 6, max_new_tokens: 12, n: 8}]",
        )
    )  # fmt: skip

    def poison(module, args, output):
        if torch.is_grad_enabled() and t.step >= 2:  # the update's forward from the third step on
            output = output.clone()
            output[..., -1] = float("nan")  # one feature of every position: every logit downstream
        return output

    t.model.model.norm.register_forward_hook(poison)
    saved: list = []
    with (
        warnings.catch_warnings(record=True) as caught,
        pytest.raises(RuntimeError, match="2 non-finite steps in a row at step 3"),
    ):
        warnings.simplefilter("always")
        real_step = t._step

        def step(stage):
            metrics = real_step(stage)
            saved.append([p.detach().clone() for p in t.model.parameters()])
            return metrics

        t._step = step  # type: ignore[method-assign]
        t.train()
    assert sum("update skipped" in str(w.message) for w in caught) == 2
    assert all(
        torch.equal(a, b) for a, b in zip(saved[1], saved[3], strict=True)
    )  # steps 3, 4 changed nothing
    last = checkpoint.latest(tmp_path / "run")
    assert last is not None and last.name == "step-000003"
    state = torch.load(last / "trainer.pt", weights_only=False)
    assert state["step"] == 3
    from safetensors.torch import load_file

    weights = load_file(last / "model.safetensors")
    assert all(torch.isfinite(w).all() for w in weights.values())
