"""What one RL step learns from: groups of rollouts with their rewards, and the tensors the loss needs.

`Group`: the n rollouts of one prompt, scored. `score_groups` turns rollouts into groups (reward function, the
verifier's correctness, overlong handling); `keep_group` is DAPO's dynamic-sampling test; `Difficulty` keeps each
prompt's pass-rate history across epochs (Light-R1's offline difficulty filter, done live). `Experience` is the
flat training batch: one row per response, right-padded token ids and masks per micro-batch (`rows`), with the
advantage and per-token values of each response's completion (old / reference log-probs, the critic's values).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from rlvr.data.templates import Template, response
from rlvr.models.logprobs import completion_mask
from rlvr.rewards.functions import dapo_overlong
from rlvr.rewards.pool import WorkerPool
from rlvr.rewards.score import FAILURE_KINDS, Score, failure_kind
from rlvr.rollout.types import Rollout

Overlong = Literal["none", "filter", "zero", "soft"]


@dataclass
class Group:
    problem: int  # index into the training problems
    rollouts: list[Rollout]
    responses: list[str]  # what was scored: the template's prefix, then each rollout's text (data.templates)
    rewards: list[float]
    correct: list[bool]
    truncated: list[bool]
    failures: list[str | None]  # why a reward could not be computed (then 0), per response: `Score.failure`

    @property
    def pass_rate(self) -> float:
        return sum(self.correct) / len(self.correct)


def score_groups(
    rollouts: list[Rollout],
    problems: Sequence[int],
    golds: Sequence[str],
    *,
    pool: WorkerPool[Score],
    overlong: Overlong,
    max_new_tokens: int,
    overlong_buffer: int,
    template: Template | None = None,
) -> list[Group]:
    """Score every rollout through `pool` (`rlvr.rewards.score.reward_pool`: the reward, the verdict, failures
    scored 0) and group them by prompt.

    template: the prompts', whose assistant prefix they ended with: rewards see prefix + completion
    (`templates.response`), the whole answer the model wrote (a `<think>` the prefix opened, closed in the
    completion).

    Overlong handling of truncated responses: "zero" sets their reward to 0 (Dr. GRPO), "soft" adds DAPO's
    length penalty (0 up to max_new_tokens - overlong_buffer, then linear to -1), "filter" leaves the reward but
    the response is masked out of the loss (`Experience`), "none" does nothing.
    """
    texts = [response(template or Template(), r.text) for r in rollouts]
    scores = pool.grade(zip(texts, [golds[r.prompt_index] for r in rollouts], strict=True))
    groups: dict[int, Group] = {}
    for rollout, text, (value, correct, failure) in zip(rollouts, texts, scores, strict=True):
        truncated = rollout.finish_reason == "length"
        if truncated and overlong == "zero":
            value = 0.0
        elif overlong == "soft":
            value += dapo_overlong(len(rollout.completion_ids), max_new_tokens, overlong_buffer)
        g = groups.setdefault(
            rollout.prompt_index, Group(problems[rollout.prompt_index], [], [], [], [], [], [])
        )
        g.rollouts.append(rollout)
        g.responses.append(text)
        g.rewards.append(value)
        g.correct.append(correct)
        g.truncated.append(truncated)
        g.failures.append(failure)
    return list(groups.values())


def keep_group(group: Group) -> bool:
    """DAPO dynamic sampling: a group whose rewards are all equal has zero advantage everywhere; drop it."""
    return max(group.rewards) - min(group.rewards) > 1e-9


@dataclass
class Difficulty:
    """Each prompt's pass rate at every visit. With `skip_after` k > 0, a prompt solved by all samples, or by
    none, at each of its last k visits is skipped from then on (`skip_solved` / `skip_unsolved` choose which)."""

    history: dict[int, list[float]] = field(default_factory=dict)
    skip_after: int = 0
    skip_solved: bool = True
    skip_unsolved: bool = False

    def record(self, problem: int, pass_rate: float) -> None:
        self.history.setdefault(problem, []).append(pass_rate)

    def skipped(self, problem: int) -> bool:
        last = self.history.get(problem, [])[-self.skip_after :] if self.skip_after else []
        if len(last) < self.skip_after or not last:
            return False
        return (self.skip_solved and min(last) == 1.0) or (self.skip_unsolved and max(last) == 0.0)

    def counts(self) -> dict[str, float]:
        latest = [h[-1] for h in self.history.values()]
        n = max(1, len(latest))
        return {
            "difficulty/seen": len(latest),
            "difficulty/solved": sum(r == 1.0 for r in latest) / n,
            "difficulty/unsolved": sum(r == 0.0 for r in latest) / n,
            "difficulty/skipped": sum(self.skipped(p) for p in self.history),
        }

    def state(self) -> dict[str, Any]:
        return {"history": self.history}


@dataclass
class Experience:
    """One row per response (R rows on this process)."""

    sequences: list[list[int]]  # prompt + completion ids
    prompt_lens: list[int]
    scores: Tensor  # (R,) float32 each response's reward
    advantages: Tensor  # (R,) float32 outcome advantages (PPO: zeros, token-level ones are stored)
    trained: list[bool]  # False: masked out of the loss (overlong filter)
    # name → one (C_i,) tensor per row at its completion tokens: sampling_logp (the engine's), old_logp (off-policy
    # update), ref_logp (KL to the reference), values, returns and token-level advantages (PPO's critic)
    per_token: dict[str, list[Tensor]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.sequences)

    def rows(self, index: Sequence[int], device: torch.device, stored: bool = True) -> dict[str, Tensor]:
        """Right-padded tensors of rows `index`: input_ids, attention_mask (b, T); completion, loss_mask (b, T)
        bool; advantages, prompt_lengths (b,); and when `stored`, each `per_token` entry as (b, T) float32, 0 off the completion
        (stored token-level "advantages" replace the outcome ones)."""
        seqs = [self.sequences[i] for i in index]
        T = max(len(s) for s in seqs)
        ids = torch.zeros((len(seqs), T), dtype=torch.long)  # pad id never read: masked
        attention = torch.zeros((len(seqs), T), dtype=torch.long)
        for b, s in enumerate(seqs):
            ids[b, : len(s)] = torch.tensor(s)
            attention[b, : len(s)] = 1
        completion = completion_mask(attention, torch.tensor([self.prompt_lens[i] for i in index]))  # (b, T)
        trained = torch.tensor([self.trained[i] for i in index])[:, None]  # (b, 1)
        out = {
            "input_ids": ids.to(device),
            "attention_mask": attention.to(device),
            "completion": completion.to(device),
            "loss_mask": (completion & trained).to(device),
            "advantages": self.advantages[list(index)].to(device),
            "prompt_lengths": torch.tensor([self.prompt_lens[i] for i in index], device=device),
        }
        for name, store in self.per_token.items() if stored else ():
            values = torch.zeros((len(seqs), T), dtype=torch.float32)
            values.masked_scatter_(completion, torch.cat([store[i] for i in index]).float().cpu())
            out[name] = values.to(device)
        return out

    def fill(
        self,
        name: str,
        compute: Callable[[dict[str, Tensor]], Tensor],
        batches: Sequence[Sequence[int]],
        device: torch.device,
    ) -> None:
        """Store `compute(rows)` (b, T) at the completion tokens of every row, one batch of row indices at a time
        (`rlvr.train.batches.forward_order`; the rows carry no stored tables)."""
        for index in batches:
            rows = self.rows(index, device, stored=False)
            self.store(name, index, compute(rows), rows["completion"])

    def store(self, name: str, index: Sequence[int], values: Tensor, completion: Tensor) -> None:
        """Keep per-row completion values (b, T) at `completion` positions, e.g. old log-probs."""
        store = self.per_token.setdefault(name, [torch.empty(0)] * len(self))
        for b, i in enumerate(index):
            store[i] = values[b][completion[b]].detach().float().cpu()


def build_experience(
    groups: list[Group],
    advantage_of: Callable[[Tensor, Tensor, Tensor], Tensor],
    overlong: Overlong,
    sampling_logp: bool = False,
) -> Experience:
    """Rows of every kept group, with advantages from (scores (R,), group index (R,), token counts (R,)); with
    `sampling_logp`, the engine's log-probs of each completion (`Rollout.logprobs`) stored as "sampling_logp"."""
    sequences, prompt_lens, scores, index, counts, trained = [], [], [], [], [], []
    for g, group in enumerate(groups):
        for rollout, value, truncated in zip(group.rollouts, group.rewards, group.truncated, strict=True):
            sequences.append(list(rollout.prompt_ids) + list(rollout.completion_ids))
            prompt_lens.append(len(rollout.prompt_ids))
            scores.append(value)
            index.append(g)
            counts.append(len(rollout.completion_ids))
            trained.append(not (truncated and overlong == "filter") and len(rollout.completion_ids) > 0)
    advantages = advantage_of(
        torch.tensor(scores, dtype=torch.float32),
        torch.tensor(index),
        torch.tensor(counts, dtype=torch.float32),
    )
    experience = Experience(
        sequences, prompt_lens, torch.tensor(scores, dtype=torch.float32), advantages.float(), trained
    )
    if sampling_logp:
        rollouts = [r for g in groups for r in g.rollouts]
        if any(len(r.logprobs) != len(r.completion_ids) for r in rollouts):
            raise ValueError("the engine returned no log-prob for some completion tokens")
        experience.per_token["sampling_logp"] = [
            torch.tensor(r.logprobs, dtype=torch.float32) for r in rollouts
        ]
    return experience


# one sampled group as the metrics see it: rewards, verifier verdicts, response lengths, truncated flags, failure
# kinds (None: scored)
GroupSummary = tuple[list[float], list[bool], list[int], list[bool], list[str | None]]


def summarize(group: Group) -> GroupSummary:
    """What `rollout_metrics` needs of a group: small enough to gather from every process."""
    lengths = [len(r.completion_ids) for r in group.rollouts]
    kinds = [None if f is None else failure_kind(f) for f in group.failures]
    return group.rewards, group.correct, lengths, group.truncated, kinds


def rollout_metrics(sampled: list[GroupSummary], kept: int, max_new_tokens: int) -> dict[str, Any]:
    """Step metrics over every sampled group (`summarize`); kept: the groups trained on after dynamic sampling."""
    rewards = [r for g in sampled for r in g[0]]
    correct = [c for g in sampled for c in g[1]]
    lengths = [n for g in sampled for n in g[2]]
    truncated = [t for g in sampled for t in g[3]]
    failures = [f for g in sampled for f in g[4]]
    right = [n for n, c in zip(lengths, correct, strict=True) if c]
    wrong = [n for n, c in zip(lengths, correct, strict=True) if not c]
    n = max(1, len(rewards))
    mean = sum(rewards) / n
    return {
        "train/reward_mean": mean,
        "train/reward_std": math.sqrt(sum((r - mean) ** 2 for r in rewards) / n),
        "train/accuracy": sum(correct) / n,
        "train/all_correct": sum(all(g[1]) for g in sampled) / max(1, len(sampled)),
        "train/all_wrong": sum(not any(g[1]) for g in sampled) / max(1, len(sampled)),
        "train/response_length": sum(lengths) / n,
        "train/response_length_max": max(lengths, default=0),
        "train/length_correct": sum(right) / max(1, len(right)),
        "train/length_wrong": sum(wrong) / max(1, len(wrong)),
        "train/truncated": sum(truncated) / n,
        "train/groups_sampled": len(sampled),
        "train/groups_kept": kept,
        "train/max_new_tokens": max_new_tokens,
        **{f"reward/{kind}": failures.count(kind) for kind in FAILURE_KINDS},
    }


def keep_samples_until(path: Path, step: int) -> None:
    """A run starting (step 0) or resuming at `step`: drop the rows of later steps (they are done again) and a line
    cut short by a kill, so samples.jsonl never holds a step twice."""
    import json

    from rlvr.io import atomic_write

    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            if json.loads(line)["step"] <= step:
                kept.append(line + "\n")
        except (ValueError, KeyError, TypeError):
            continue
    with atomic_write(path) as f:  # a kill now must not cost the rows kept
        f.write("".join(kept))


def write_samples(
    path: Path, step: int, groups: list[Group], problems: Sequence[Any], per_group: int = 2
) -> None:
    """Append a few responses (the first `per_group` of the first two groups) to a JSONL file for reading.
    `step`: the step these rollouts trained, numbered as metrics.jsonl numbers it (the first step is 1)."""
    import json

    with path.open("a", encoding="utf-8") as f:
        for group in groups[:2]:
            problem = problems[group.problem]
            rows = zip(group.rollouts, group.responses, group.rewards, group.correct, strict=True)
            for rollout, response, reward, correct in list(rows)[:per_group]:
                record = {
                    "step": step, "id": problem.id, "problem": problem.problem, "answer": problem.answer,
                    "response": response, "reward": reward, "correct": correct,
                    "finish_reason": rollout.finish_reason,
                }  # fmt: skip
                f.write(json.dumps(record) + "\n")
