"""Length-shaped rewards: DAPO's soft overlong punishment, the cosine reward, Kimi k1.5's length penalty.

Every length here is a count of response tokens, which only the trainer knows (it holds the token ids);
these functions never tokenize. They do not fit the `(response, gold)` signature of
`rlvr.rewards.functions.REWARDS`, so a trainer calls them itself: `dapo_overlong` is added to the accuracy
reward, `cosine_length` replaces it, and `kimi_length_penalty` is added per group of responses to one prompt.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def dapo_overlong(length: int, max_length: int = 20480, cache: int = 4096) -> float:
    """DAPO's soft overlong punishment (Yu et al. 2025, "DAPO"), added to the accuracy reward.

    With L = `length`, L_max = `max_length` and L_cache = `cache`, all in tokens:
        0                                   if L ≤ L_max − L_cache
        ((L_max − L_cache) − L) / L_cache   if L_max − L_cache < L ≤ L_max   (linear from 0 down to −1)
        −1                                  if L > L_max
    `cache` = 0 makes it a step: 0 up to L_max, −1 beyond. DAPO's numbers: L_max 20480, L_cache 4096.
    """
    if not 0 <= cache <= max_length:
        raise ValueError(f"need 0 <= cache <= max_length, got cache={cache}, max_length={max_length}")
    free = max_length - cache  # the longest response that is not punished
    if length <= free:
        return 0.0
    if length > max_length:
        return -1.0
    return (free - length) / cache  # cache > 0 here: free < length <= max_length


def cosine_length(
    correct: bool,
    length: int,
    max_length: int,
    *,
    r0_correct: float = 2.0,
    rL_correct: float = 1.0,
    r0_wrong: float = -10.0,
    rL_wrong: float = 0.0,
    exceed_length: float = -10.0,
) -> float:
    """Cosine length-scaled reward (Yeo et al. 2025, "Demystifying Long Chain-of-Thought Reasoning in LLMs").

    The paper's η_min + ½(η_max − η_min)(1 + cos(πL/L_max)), L = `length`, L_max = `max_length` in tokens,
    written as cos_fn(η_0, η_L) = η_L + ½(η_0 − η_L)(1 + cos(πL/L_max)): η_0 at L = 0 down/up to η_L at L_max.
        `exceed_length`                  if L ≥ L_max (the response was cut off)
        cos_fn(r0_correct, rL_correct)   if correct (default 2 → 1: shorter correct answers are better)
        cos_fn(r0_wrong, rL_wrong)       otherwise  (default −10 → 0: if wrong, at least think longer)
    This replaces the 1/0 accuracy reward rather than adding to it. No answer counts as wrong.
    """
    if max_length <= 0:
        raise ValueError(f"max_length must be positive, got {max_length}")
    if length >= max_length:
        return exceed_length
    r0, rL = (r0_correct, rL_correct) if correct else (r0_wrong, rL_wrong)
    return rL + 0.5 * (r0 - rL) * (1.0 + math.cos(math.pi * length / max_length))


def kimi_length_penalty(correct: Sequence[bool], lengths: Sequence[int]) -> list[float]:
    """Kimi k1.5's length reward over the group of responses to one prompt (Kimi Team 2025, "Kimi k1.5").

    With min/max the shortest/longest response length in tokens in the group, correct and wrong alike:
        λ_i = 0.5 − (len_i − min) / (max − min)
        reward_i = λ_i if correct_i else min(0, λ_i)
    so the shortest correct answer gets +0.5, the longest −0.5, and a wrong answer is never paid for brevity.
    When all lengths are equal (max = min) every response gets 0. Kimi adds this to the accuracy reward
    (after a warm-up); the weight is the trainer's choice.
    """
    if len(correct) != len(lengths):
        raise ValueError(f"correct has {len(correct)} entries but lengths has {len(lengths)}")
    if not lengths:
        return []
    shortest, longest = min(lengths), max(lengths)
    if shortest == longest:
        return [0.0] * len(lengths)
    out = []
    for ok, n in zip(correct, lengths, strict=True):
        lam = 0.5 - (n - shortest) / (longest - shortest)
        out.append(lam if ok else min(0.0, lam))
    return out
