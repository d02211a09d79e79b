"""Tokens and text at an engine's edges, shared by every backend so that they agree on what a completion is.

In: prompts are complete text (chat template already applied), encoded without adding special tokens, checked
against the model's context. Out: where a completion ends (the first eos token, the first stop string, or its
length budget) and its text. Knows nothing of models or sampling.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

FinishReason = Literal["stop", "length"]


def eos_ids(model: Any, tokenizer: Any) -> tuple[int, ...]:
    """Every id that ends a completion: the tokenizer's eos plus the model's generation config (an int or a list;
    Qwen2.5-Instruct lists both <|im_end|> and <|endoftext|>)."""
    ids: set[int] = set()
    if tokenizer.eos_token_id is not None:
        ids.add(int(tokenizer.eos_token_id))
    config = getattr(model, "generation_config", None)
    extra = getattr(config, "eos_token_id", None)
    if extra is not None:
        ids.update(int(i) for i in (extra if isinstance(extra, (list, tuple)) else [extra]))
    return tuple(sorted(ids))


def context_length(model: Any) -> int:
    """Positions the model was built for (`max_position_embeddings`)."""
    return int(model.config.max_position_embeddings)


def encode_prompts(tokenizer: Any, prompts: Sequence[str], context: int) -> list[list[int]]:
    """Token ids of each prompt; a ValueError names the prompt and lengths when one leaves no room to generate."""
    if isinstance(prompts, str):
        raise TypeError("prompts must be a list of strings, not one string")
    encoded = [list(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    for i, ids in enumerate(encoded):
        if not ids:
            raise ValueError(f"prompt {i} is empty: generation needs at least one prompt token")
        if len(ids) >= context:
            raise ValueError(
                f"prompt {i} has {len(ids)} tokens but the model's context (max_position_embeddings) is "
                f"{context}: no room for a completion"
            )
    return encoded


def budgets(prompt_ids: Sequence[Sequence[int]], max_new_tokens: int, context: int) -> list[int]:
    """New tokens each prompt may get: `max_new_tokens`, less where the context runs out first (then "length")."""
    return [min(max_new_tokens, context - len(ids)) for ids in prompt_ids]


def prepare(
    model: Any, tokenizer: Any, prompts: Sequence[str], max_new_tokens: int, ignore_eos: bool
) -> tuple[list[list[int]], list[int], tuple[int, ...]]:
    """What every local engine needs first: prompt ids (context-checked), per-row token budgets, eos ids."""
    context = context_length(model)
    prompt_ids = encode_prompts(tokenizer, prompts, context)
    limits = budgets(prompt_ids, max_new_tokens, context)
    return prompt_ids, limits, (() if ignore_eos else eos_ids(model, tokenizer))


def find_end(
    tokenizer: Any,
    ids: list[int],
    start: int,
    budget: int,
    eos: Sequence[int],
    stop: Sequence[str],
) -> tuple[int, FinishReason] | None:
    """Where the completion `ids` ends, looking only at tokens from `start` on (those before were checked):
    (tokens to keep, reason), or None while it goes on. The eos token and the token that completes a stop string
    are kept. Stop strings are matched in the text with special tokens, so a stop like "</answer>" works when it
    is a special token."""
    end: int | None = None
    for t in range(start, min(len(ids), budget)):
        if ids[t] in eos:
            end = t + 1
            break
    if stop:
        hit = _stop_end(tokenizer, ids[: end or budget], start, stop)
        if hit is not None:
            end = hit
    if end is not None:
        return end, "stop"
    if len(ids) >= budget:
        return budget, "length"
    return None


def _stop_end(tokenizer: Any, ids: list[int], start: int, stop: Sequence[str]) -> int | None:
    """The fewest tokens whose text contains a stop string, searching a tail from just before `start`."""
    # A stop string of c characters spans at most 4c tokens (byte-level tokens, 4 UTF-8 bytes a character).
    lo = max(0, start - 4 * max(len(s) for s in stop))
    tail = ids[lo:]
    if not tail or not any(s in tokenizer.decode(tail, skip_special_tokens=False) for s in stop):
        return None
    # Smallest k with a stop string in the text of tail[:k]: containment is monotone in k, so bisect.
    left, right = 1, len(tail)
    while left < right:
        mid = (left + right) // 2
        if any(s in tokenizer.decode(tail[:mid], skip_special_tokens=False) for s in stop):
            right = mid
        else:
            left = mid + 1
    return lo + left


def completion_text(tokenizer: Any, ids: Sequence[int], eos: Sequence[int]) -> str:
    """Decoded completion without eos and pad tokens. Other special tokens stay: rewards parse <think>/<answer>,
    which are special tokens in some tokenizers (and skipping specials would also drop the tiny tokenizer's "?")."""
    drop = set(eos)
    if tokenizer.pad_token_id is not None:
        drop.add(int(tokenizer.pad_token_id))
    return tokenizer.decode([i for i in ids if i not in drop], skip_special_tokens=False)
