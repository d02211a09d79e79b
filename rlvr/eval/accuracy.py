"""Held-out accuracy of the live model during training: sample answers to problems through a rollout engine and
grade them with rlvr's verifier. The quick check SFT and RL log; `rlvr eval` is the full protocol (pass@k, cons@k,
confidence intervals, resumable per-sample records)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlvr.data.schema import Problem
from rlvr.data.templates import render
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


def heldout_accuracy(
    model: Any,
    tokenizer: Any,
    problems: list[Problem],
    *,
    template: str,
    max_new_tokens: int,
    n: int = 1,
    temperature: float = 0.0,
    seed: int = 0,
    engine: Any = None,
    final_form: bool = False,
) -> Accuracy:
    """Accuracy of `n` samples per problem (greedy by default) on the fast engine unless `engine` is given.
    final_form: graded as `verify(final_form=...)`, the set's rule (`rlvr.data.registry.final_form`)."""
    if engine is None:
        from rlvr.rollout.fast import FastEngine

        engine = FastEngine(model, tokenizer)
    was_training = model.training
    model.eval()
    try:
        prompts = [render(template, p.problem, tokenizer) for p in problems]
        params = SamplingParams(n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        rollouts = engine.generate(prompts, params)
    finally:
        model.train(was_training)
    correct = [
        verify(r.text, problems[r.prompt_index].answer, final_form=final_form).correct for r in rollouts
    ]
    count = max(1, len(rollouts))
    return Accuracy(
        accuracy=sum(correct) / count,
        samples=len(rollouts),
        mean_length=sum(len(r.completion_ids) for r in rollouts) / count,
        truncated=sum(r.finish_reason == "length" for r in rollouts) / count,
        rollouts=rollouts,
        correct=correct,
    )
