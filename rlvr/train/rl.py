"""Reinforcement learning with verifiable rewards: the GRPO family (GRPO, Dr. GRPO, DAPO, RLOO, REINFORCE++) and
PPO with a critic (`rlvr.train.critic`).

One flat loop, each step:
  prompts (next in a seeded epoch order, minus prompts the difficulty table skips)
  → rollouts (n per prompt, through the rollout engine over the live model)
  → rewards (rlvr's reward functions, in worker processes) and overlong handling
  → dynamic sampling (drop groups whose rewards are all equal, sample more prompts, bounded)
  → old and reference log-probs (only when needed: μ > 1 or several mini-batches; β > 0; the critic's per-token KL)
  → advantages (over the whole step's batch; PPO: the critic's values → GAE)
  → μ epochs over mini-batches of micro-batches, each mini-batch one optimizer step
  → the engine sees the new weights (same module; vLLM gets them pushed) → metrics → checkpoint.

Aggregation is exact under accumulation and across processes: each mini-batch's normaliser (tokens, sequences
or sequences × L_max) is computed over all its micro-batches on all processes before any backward.
Stages run one after another in one resumable run (DeepScaleR's 8K → 16K → 24K), each with its own response
length, n and step count, optionally ending early when the training accuracy plateaus, optionally resetting the
reference model and the optimizer at its start.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any

import torch

from rlvr.config import save_config
from rlvr.data.registry import final_form, load_problems
from rlvr.data.templates import render, resolve
from rlvr.models.build import build_model
from rlvr.models.logprobs import LogprobModel
from rlvr.rewards.score import reward_pool
from rlvr.rollout import SamplingParams, run_engine
from rlvr.train import checkpoint, distributed, precision, sharding
from rlvr.train.critic import CRITIC_DIR, Critic
from rlvr.train.distributed import World
from rlvr.train.examples import epoch_order
from rlvr.train.experience import (
    Difficulty,
    Experience,
    Group,
    keep_group,
    keep_samples_until,
    rollout_metrics,
    score_groups,
    summarize,
    write_samples,
)
from rlvr.train.memory import phase_peak, release_freed
from rlvr.train.metrics import MetricsLog
from rlvr.train.optim import adamw, lr_at, set_lr
from rlvr.train.prepare import batch_advantages, engine_old_logp, prepare
from rlvr.train.rl_config import RLConfig, Stage, check
from rlvr.train.update import update


def run(config: RLConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    world = distributed.init(config.device)
    try:
        figures = Trainer(config, world, resume=resume, progress=progress).train()
        distributed.barrier()  # no process closes its links while another still uses them
        return figures
    finally:
        distributed.shutdown()


# what a checkpoint holds besides weights, optimizer, RNGs and the difficulty table
STATE = ("step", "stage", "stage_step", "consumed", "best", "since_best", "ema", "reference_path")


class Trainer:
    """The run's state (model, optimizer, data position, stage, difficulty table); `train` is the loop."""

    def __init__(self, config: RLConfig, world: World, *, resume: bool, progress: bool) -> None:
        check(config, world.size)
        config = precision.resolved(config, world.device)
        self.config, self.world, self.progress = config, world, progress
        self.run_dir = Path(config.out_dir)
        last = checkpoint.latest(self.run_dir)
        if last is not None and not resume:
            raise ValueError(
                f"{self.run_dir} already holds checkpoints: pass --resume, or choose another out_dir"
            )
        torch.manual_seed(config.seed)
        self.param_dtype = precision.param_dtype(config)  # the reference's and critic's too
        self.model, self.tokenizer = build_model(
            config, last if resume else None, world.device, self.param_dtype
        )
        self.problems = load_problems(config.data, require_answer=False)
        # the recipe's final_form, else each set's own (GSM8K, arith: answers must be written as numbers)
        self.final_form = final_form(config.data) if config.final_form is None else config.final_form
        self.eval_final_form = (
            final_form(config.eval_data) if config.final_form is None else config.final_form
        )
        self.template = resolve(config.template)
        self.prompts = [render(self.template, p.problem, self.tokenizer) for p in self.problems]
        self.eval_problems = (
            load_problems(config.eval_data, require_answer=False)[: config.eval_problems]
            if config.eval_data
            else []
        )
        self.critic = (  # from the policy's weights before they are sharded
            Critic(config, self.model, last if resume else None, world.device)
            if config.advantage == "gae"
            else None
        )
        self.policy = LogprobModel(self.model)  # what the update calls: its forward is FSDP's root
        if config.sharding == "fsdp":
            sharding.shard(self.policy, self.model.get_decoder().layers)
        self.optimizer = self._optimizer()
        self.step, self.stage, self.stage_step, self.consumed = 0, 0, 0, 0
        self._order: tuple[int, list[int]] = (-1, [])  # (epoch, its prompt order)
        self.best, self.since_best = -1.0, 0
        self.ema: float | None = None
        self.difficulty = Difficulty(skip_after=config.skip_after, skip_unsolved=config.skip_unsolved)
        self.reference_path = config.model
        if resume and last is not None:
            state = checkpoint.load(last, self.optimizer, world, model=self.model)
            if self.critic is not None:
                saved = checkpoint.widened(state["critic_optimizer"], self.critic.optimizer)
                sharding.load_optimizer_state(self.critic.model, self.critic.optimizer, saved)
            for key in STATE:
                setattr(self, key, state[key])
            self.difficulty.history = state["difficulty"]["history"]
        self.reference = self._reference() if config.kl_coef > 0 else None
        self.engine_logp = engine_old_logp(config, world.device)
        self.engine = run_engine(
            config.engine,
            self.model,
            self.tokenizer,
            last if resume and last else config.model,
            config.rollout_dtype,
        )
        self.rewards = reward_pool(
            config.reward_workers,
            config.reward,
            final_form=self.final_form,
            timeout_s=config.reward_timeout_s,
            memory_mb=config.reward_memory_mb,
        )
        self.resumed = resume and last is not None

    # -- the loop -----------------------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        try:
            return self._train()
        finally:  # also when the run stops on bad steps or an error: no reward worker outlives it
            self.rewards.close()

    def _train(self) -> dict[str, Any]:
        config, world = self.config, self.world
        if world.main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            save_config(config, self.run_dir / "config.yaml")
            checkpoint.clear_leftovers(self.run_dir)
            keep_samples_until(self.run_dir / "samples.jsonl", self.step if self.resumed else 0)
        log = MetricsLog(
            self.run_dir / "metrics.jsonl",
            resume_step=self.step if self.resumed else None,
            tensorboard=config.tensorboard,
            main=world.main,
        )
        figures: dict[str, Any] = {}
        start = time.time()
        if not self.resumed and self.eval_problems:
            before = self._evaluate()
            log.log(self.step, before)
            figures.update({f"{k}_before": before[k] for k in ("eval/accuracy", "eval/truncated")})
        last_eval = self._loop(log, figures)
        if checkpoint.latest(self.run_dir) != checkpoint.step_dir(self.run_dir, self.step):
            self._save()  # the end (a stage may have ended early on a plateau: fewer steps than planned)
        if self.eval_problems:
            if last_eval[0] != self.step:  # the last step's own evaluation, when it had one, is the after
                last_eval = self.step, self._evaluate()
                log.log(self.step, last_eval[1])
            after = last_eval[1]
            figures.update({f"{k}_after": after[k] for k in ("eval/accuracy", "eval/truncated")})
            figures.update({k: v for k, v in after.items() if k != "eval/accuracy"})  # its n, temperature
        checkpoint.save_model(self.model, self.tokenizer, self.run_dir / "final", world)
        log.close()
        figures.update(steps=self.step, seconds=time.time() - start, run_dir=str(self.run_dir))
        return figures

    def _loop(self, log: MetricsLog, figures: dict[str, Any]) -> tuple[int, dict[str, float]]:
        """Steps through every stage, logging each; returns the step and figures of the last held-out evaluation
        ((-1, {}) without one)."""
        from tqdm import tqdm

        config = self.config
        total = sum(s.steps for s in config.stages)
        bar = tqdm(
            total=total,
            initial=self.step,
            disable=not (self.progress and self.world.main),
            desc="rl",
            unit="step",
        )
        bad_steps = 0
        last_eval: tuple[int, dict[str, float]] = (-1, {})
        while self.stage < len(config.stages):
            stage = config.stages[self.stage]
            if self.stage_step >= stage.steps or self._plateaued(stage):
                self._next_stage()
                continue
            metrics = self._step(stage)
            bad_steps = bad_steps + 1 if metrics.get("train/skipped") else 0
            if bad_steps > config.max_bad_steps:
                raise RuntimeError(
                    f"{bad_steps} non-finite steps in a row at step {self.step}: stopping; "
                    f"the last checkpoint in {self.run_dir / 'checkpoints'} is intact"
                )
            self.step += 1
            self.stage_step += 1
            if config.eval_every and self.step % config.eval_every == 0 and self.eval_problems:
                last_eval = self.step, self._evaluate()
                metrics.update(last_eval[1])
            log.log(self.step, metrics)
            figures.update(metrics)
            bar.set_postfix(
                reward=f"{metrics['train/reward_mean']:.3f}", acc=f"{metrics['train/accuracy']:.3f}"
            )
            bar.update(1)
            if config.save_every and self.step % config.save_every == 0:
                self._save()
        bar.close()
        return last_eval

    def _step(self, stage: Stage) -> dict[str, Any]:
        config, device = self.config, self.world.device
        t0 = time.time()
        with phase_peak(device) as rollout_peak:
            groups, sampled, timings = self._collect(stage)
        t1 = time.time()
        # over every process's groups: the log shows the whole step, and every process decides stage ends alike
        everywhere = [
            s for part in distributed.all_gather_object([summarize(g) for g in sampled]) for s in part
        ]
        kept = int(distributed.all_sum([len(groups)], device)[0])
        metrics = rollout_metrics(everywhere, kept, stage.max_new_tokens)
        self._track_plateau(metrics["train/accuracy"])
        metrics.update(self.difficulty.counts())
        metrics["mem/rollout_gb"] = rollout_peak.gb
        if not groups:  # every group had equal rewards: nothing to learn from this step
            metrics.update({"train/skipped": 0.0, "train/empty": 1.0, **timings})
            return metrics
        with phase_peak(device) as logprob_peak:
            experience = prepare(
                groups,
                config,
                self.world,
                self.policy,
                self.reference,
                self.critic,
                self.engine_logp,
                metrics,
            )
        t2 = time.time()
        with phase_peak(device) as update_peak:
            metrics.update(self._update(experience))
            if hasattr(self.engine, "load_weights"):  # vLLM holds its own copy of the weights
                with sharding.gathered(self.policy):
                    self.engine.load_weights(self.model.named_parameters())
            del experience
            release_freed()  # the update's activations, before the next rollout
        t3 = time.time()
        tokens = sum(len(r.completion_ids) for g in sampled for r in g.rollouts)  # this process's
        metrics.update(
            {
                "time/generate": timings["time/generate"],
                "time/reward": timings["time/reward"],
                "time/logprob": t2 - t1,
                "time/update": t3 - t2,
                "time/step": t3 - t0,
                "perf/tokens_per_s": sum(sum(s[2]) for s in everywhere) / max(t3 - t0, 1e-9),  # all processes
                "perf/generate_tokens_per_s": tokens / max(timings["time/generate"], 1e-9),  # one engine
                "mem/logprob_gb": logprob_peak.gb,
                "mem/update_gb": update_peak.gb,
            }
        )
        step = self.step + 1  # the step this update completes, as metrics.jsonl numbers it
        if config.sample_every and step % config.sample_every == 0 and self.world.main:
            write_samples(self.run_dir / "samples.jsonl", step, sampled, self.problems)
        return metrics

    # -- rollouts --------------------------------------------------------------------------------------------------
    def _next_prompts(self, count: int) -> list[int]:
        """The next `count` prompts for all processes together, skipping what the difficulty table skips."""
        out: list[int] = []
        size, scanned = len(self.problems), 0
        while len(out) < count:
            epoch, offset = divmod(self.consumed, size)
            if self._order[0] != epoch:  # one shuffle per epoch (20K problems: ~15 ms), not one per prompt
                self._order = (epoch, epoch_order(size, self.config.seed, epoch))
            index = self._order[1][offset]
            self.consumed += 1
            if not self.difficulty.skipped(index):
                out.append(index)
                scanned = 0
            elif (scanned := scanned + 1) >= 2 * size:  # skipped in a row: any 2 * size span holds an epoch
                raise RuntimeError("every training prompt is skipped by the difficulty filter (skip_after)")
        return out

    def _collect(self, stage: Stage) -> tuple[list[Group], list[Group], dict[str, float]]:
        """Kept groups (this process's share), every sampled group, and the time spent generating and scoring."""
        config, world = self.config, self.world
        need = config.prompts_per_step // world.size
        kept: list[Group] = []
        sampled: list[Group] = []
        t_gen = t_reward = 0.0
        for round_ in range(1 + (config.max_sample_rounds if config.dynamic_sampling else 0)):
            # every process consumes the same global prompts: the largest shortfall of any process, times W
            missing = int(distributed.all_max(need - len(kept), world.device))
            if missing <= 0:
                break
            chosen = self._next_prompts(missing * world.size)[world.rank :: world.size]
            params = SamplingParams(
                n=stage.n,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k,
                max_new_tokens=stage.max_new_tokens,
                seed=config.seed * 1_000_003 + self.step * 1009 + round_ * 31 + world.rank,
            )
            t = time.time()
            with self._whole_weights():
                rollouts = self.engine.generate([self.prompts[i] for i in chosen], params)
            t_gen += time.time() - t
            t = time.time()
            groups = score_groups(
                rollouts,
                chosen,
                [self.problems[i].answer for i in chosen],
                pool=self.rewards,
                overlong=config.overlong,
                max_new_tokens=stage.max_new_tokens,
                overlong_buffer=config.overlong_buffer,
                template=self.template,
            )
            t_reward += time.time() - t
            # every process keeps the same table (it decides which prompts all of them skip)
            for part in distributed.all_gather_object([(g.problem, g.pass_rate) for g in groups]):
                for problem, pass_rate in part:
                    self.difficulty.record(problem, pass_rate)
            sampled += groups
            kept += [g for g in groups if keep_group(g)] if config.dynamic_sampling else groups
        # the same number of groups on every process (rounds may run out with some short): equal work per process,
        # which sharded models need (each forward is a collective)
        have = -int(distributed.all_max(-min(len(kept), need), world.device))
        return kept[:have], sampled, {"time/generate": t_gen, "time/reward": t_reward}

    def _advantages(self, scores: torch.Tensor, index: torch.Tensor, counts: torch.Tensor) -> torch.Tensor:
        return batch_advantages(self.config, self.world, self.critic is not None, scores, index, counts)

    def _update(self, experience: Experience) -> dict[str, Any]:
        c = self.config
        set_lr(self.optimizer, self._lr(c.lr))
        if self.critic is not None:
            set_lr(self.critic.optimizer, self._lr(c.critic_lr))
        max_len = c.stages[self.stage].max_new_tokens
        return update(
            self.policy, self.optimizer, experience, c, self.world, max_len, self.step, critic=self.critic
        )

    def _lr(self, base: float) -> float:
        c = self.config
        return lr_at(
            self.step, lr=base, total=sum(s.steps for s in c.stages), warmup=c.warmup_steps,
            schedule=c.schedule, min_lr_ratio=c.min_lr_ratio,
        )  # fmt: skip

    # -- stages, evaluation, checkpoints -------------------------------------------------------------------------
    def _plateaued(self, stage: Stage) -> bool:
        return bool(stage.plateau_patience) and self.since_best >= stage.plateau_patience

    def _next_stage(self) -> None:
        self.stage += 1
        self.stage_step = 0
        self.best, self.since_best, self.ema = -1.0, 0, None
        if self.stage >= len(self.config.stages):
            return
        stage = self.config.stages[self.stage]
        if stage.reset_reference and self.config.kl_coef > 0:
            path = self.run_dir / f"reference-stage{self.stage}"
            checkpoint.save_model(self.model, self.tokenizer, path, self.world)
            self.reference_path = str(path)
            self.reference = self._reference()
        if stage.reset_optimizer:
            self.optimizer = self._optimizer()
            if self.critic is not None:
                self.critic.optimizer = self.critic.new_optimizer()

    def _optimizer(self) -> torch.optim.AdamW:
        c = self.config
        return adamw(self.model, lr=c.lr, weight_decay=c.weight_decay, betas=c.betas, fused=c.fused_adamw)

    def _reference(self) -> LogprobModel:
        """The frozen reference: the policy's starting weights in the policy's parameter dtype, so that under the
        same autocast its log-probs equal the policy's until the first update (KL exactly 0)."""
        model, _ = build_model(self.config, self.reference_path, self.world.device, self.param_dtype)
        model.eval().requires_grad_(False)
        reference = LogprobModel(model)
        if self.config.sharding == "fsdp":
            sharding.shard(reference, model.get_decoder().layers)
        return reference

    def _whole_weights(self) -> contextlib.AbstractContextManager[None]:
        """The policy's whole weights for an in-process engine (a sharded policy is gathered; vLLM has its own)."""
        return contextlib.nullcontext() if self.config.engine == "vllm" else sharding.gathered(self.policy)

    def _evaluate(self) -> dict[str, float]:
        """Held-out accuracy and truncation, with the n and temperature they were measured at (every process
        returns the main one's figures)."""
        from rlvr.eval.accuracy import heldout_accuracy

        c = self.config
        figures: dict[str, float] = {}
        with self._whole_weights():  # every process gathers (a collective); the main one evaluates
            if self.world.main:
                result = heldout_accuracy(
                    self.model, self.tokenizer, self.eval_problems, template=self.template,
                    max_new_tokens=c.eval_max_new_tokens or c.stages[-1].max_new_tokens,
                    n=c.eval_n, temperature=c.eval_temperature, seed=c.seed, engine=self.engine,
                    final_form=self.eval_final_form,
                )  # fmt: skip
                figures = result.figures()
        shared: dict[str, float] = distributed.broadcast_object(figures)  # type: ignore[assignment]
        return shared

    def _save(self) -> None:
        state = {key: getattr(self, key) for key in STATE}
        state["difficulty"] = self.difficulty.state()
        modules = {}
        dtype = self.config.checkpoint_optimizer
        if self.critic is not None:
            critic_state = sharding.optimizer_state(self.critic.model, self.critic.optimizer)
            state["critic_optimizer"] = checkpoint.compact(critic_state, dtype)
            modules[CRITIC_DIR] = self.critic.model
        checkpoint.save(
            self.run_dir, self.step, model=self.model, tokenizer=self.tokenizer, optimizer=self.optimizer,
            state=state, world=self.world, keep_last=self.config.keep_last, modules=modules, optimizer_dtype=dtype,
        )  # fmt: skip

    def _track_plateau(self, accuracy: float) -> None:
        self.ema = accuracy if self.ema is None else 0.9 * self.ema + 0.1 * accuracy
        if self.ema > self.best + 1e-3:
            self.best, self.since_best = self.ema, 0
        else:
            self.since_best += 1
