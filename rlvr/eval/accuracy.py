"""Held-out accuracy of the live model during training: sample answers to problems through a rollout engine and
grade them with rlvr's verifier. The quick check SFT and RL log; `rlvr eval` is the full protocol (pass@k, cons@k,
confidence intervals, resumable per-sample records).

An accuracy means little without how it was sampled (the same model scores far apart greedy and at T=1), so
every figure here carries its n and temperature, and `protocol` is the one wording of them that sft, train, the
demo and `rlvr eval` print next to an accuracy."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr.data.schema import Problem
from rlvr.data.templates import Template, render, resolve, response
from rlvr.rewards.math import verify
from rlvr.rollout.types import Rollout, SamplingParams


@dataclass(frozen=True, slots=True)
class Accuracy:
    accuracy: float  # mean correctness over all samples
    samples: int
    mean_length: float  # completion tokens
    truncated: float  # share that hit max_new_tokens
    rollouts: list[Rollout]
    correct: list[bool]
    n: int  # samples per problem
    temperature: float  # 0: greedy

    def figures(self, prefix: str = "eval/") -> dict[str, float]:
        """What a metrics log records of it: accuracy and truncation with the n and temperature behind them."""
        return {
            f"{prefix}accuracy": self.accuracy,
            f"{prefix}truncated": self.truncated,
            f"{prefix}problems": self.samples // self.n,
            f"{prefix}n": self.n,
            f"{prefix}temperature": self.temperature,
        }


def protocol(n: int, temperature: float, problems: int | None = None, top_p: float = 1.0) -> str:
    """How an accuracy was sampled, in the words every command prints: `T=0 greedy, 200 problems x 1`,
    `T=0.6 top_p=0.95, n=16`."""
    how = sampling_words(temperature, top_p)
    return f"{how}, {problems} problems x {n}" if problems is not None else f"{how}, n={n}"


def sampling_words(temperature: float, top_p: float = 1.0) -> str:
    """`T=0 greedy`, `T=1`, `T=0.6 top_p=0.95`."""
    if temperature == 0:
        return "T=0 greedy"
    return f"T={temperature:g}" + (f" top_p={top_p:g}" if top_p < 1 else "")


def heldout_accuracy(
    model: Any,
    tokenizer: Any,
    problems: list[Problem],
    *,
    template: str | Template,
    max_new_tokens: int,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    engine: Any = None,
    final_form: bool = False,
) -> Accuracy:
    """Accuracy of `n` samples per problem (greedy by default) on the fast engine unless `engine` is given.
    final_form: graded as `verify(final_form=...)`, the set's rule (`rlvr.data.registry.final_form`).
    Graded on the template's prefix + each completion (`rlvr.data.templates.response`)."""
    if engine is None:
        from rlvr.rollout import local_engine

        engine = local_engine("fast", model, tokenizer)  # or hf, for a model the fast decoder cannot run
    t = resolve(template)
    was_training = model.training
    model.eval()
    try:
        prompts = [render(t, p.problem, tokenizer) for p in problems]
        params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        rollouts = engine.generate(prompts, params)
    finally:
        model.train(was_training)
    correct = [
        verify(response(t, r.text), problems[r.prompt_index].answer, final_form=final_form).correct
        for r in rollouts
    ]
    count = max(1, len(rollouts))
    return Accuracy(
        accuracy=sum(correct) / count,
        samples=len(rollouts),
        mean_length=sum(len(r.completion_ids) for r in rollouts) / count,
        truncated=sum(r.finish_reason == "length" for r in rollouts) / count,
        rollouts=rollouts,
        correct=correct,
        n=n,
        temperature=temperature,
    )
