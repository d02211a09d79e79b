"""What flows out of generation: `SamplingParams` in, one `Rollout` per completion out, and the engine protocol."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class SamplingParams:
    n: int = 1  # completions per prompt
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    max_new_tokens: int = 256
    stop: tuple[
        str, ...
    ] = ()  # stop strings: a completion ends after the first one it produces (kept in the text)
    seed: int | None = None  # same seed, same prompts, same params -> same completions
    ignore_eos: bool = False  # run past eos to a stop string or max_new_tokens (benchmarks; vLLM's name)

    def __post_init__(self) -> None:
        if self.n < 1 or self.max_new_tokens < 1:
            raise ValueError("n and max_new_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0")


@dataclass(slots=True)
class Rollout:
    """One completion of one prompt.

    `logprobs[t]` is log p(completion_ids[t] | prompt, completion_ids[:t]) under the policy that was sampled: the
    model's logits at the sampling temperature (1 when greedy), before top-p/top-k truncation — what the trainer's
    log-probs (`rlvr.train.update.completion_logprobs`) and PPO's ratio use. vLLM's are its raw log-probs
    (temperature 1), so a run on vLLM recomputes π_old (`RLConfig.old_logp`).
    """

    prompt_index: int  # which prompt of the batch
    sample_index: int  # which of its n completions
    prompt_ids: list[int]
    completion_ids: list[int]  # includes the eos token when the completion stopped on it
    text: str  # the decoded completion without eos/pad; other special tokens (<think>, <answer>) kept
    logprobs: list[float] = field(default_factory=list)  # one per completion token
    finish_reason: Literal["stop", "length"] = "length"  # stop: eos or a stop string; length: out of budget


class RolloutEngine(Protocol):
    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        """n completions for each prompt, grouped by prompt: rollouts[i * n + j] is sample j of prompt i."""
        ...
