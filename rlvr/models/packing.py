"""Packing variable-length sequences into one row, and the attention mask that keeps them apart.

Several sequences concatenated into a row of shape (1, N) waste no compute on padding. Two things keep each sequence
as if it ran alone: `position_ids` restart at 0 at each sequence (RoPE sees the same positions), and attention is
block-diagonal causal (a token sees only earlier tokens of its own sequence).

What transformers 5 accepts (checked against 5.24, every family of `rlvr.models.tiny`): a 4D mask (B, 1, T, T) is passed to the
attention kernel untouched. `sdpa` takes a boolean mask, True = may attend; `eager` *adds* the mask to the scores, so
it needs an additive float mask (0 where allowed, the dtype's minimum elsewhere) — a boolean mask there would be
silently wrong. `packed_attention_mask` builds either. Flash-attention kernels take no 4D mask: there pass
`attention_mask=None` with the restarting `position_ids`, which transformers 5 turns into variable-length attention
itself (`masking_utils.find_packed_sequence_indices`); `attention_mask_for` picks the right one per implementation.
That detection only runs with no cache: call the backbone with `use_cache=False`, or the configs' default
`use_cache=True` creates a cache and the packed row silently attends across sequences (checked: hidden states off by
~2 on the tiny Llama). We build the mask ourselves for sdpa/eager rather than rely on that detection.

A 4D mask is used as is by every layer, sliding-window layers included: for a model with sliding windows
(`rlvr.models.families.layer_windows`) the mask carries the window too, one per layer type where they differ
(gemma2/3 and qwen2/3 take a dict {layer type: mask}).

This module knows token ids and shapes only; log-probs live in `rlvr.models.logprobs`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from rlvr.models.families import layer_windows


@dataclass(frozen=True, slots=True)
class Packed:
    """S sequences of total length N in one row."""

    input_ids: Tensor  # (1, N) long
    position_ids: Tensor  # (1, N) long, 0 at the first token of each sequence
    cu_seqlens: Tensor  # (S+1,) int32, sequence i is [cu_seqlens[i], cu_seqlens[i+1])
    completion_mask: Tensor  # (1, N) bool, tokens at index >= prompt length within their sequence
    lengths: tuple[int, ...]  # (S,) tokens per sequence


def pack(sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int] | None = None) -> Packed:
    """Concatenate `sequences` into one row.

    `prompt_lengths[i]` tokens of sequence i are prompt; the rest is completion, marked in `completion_mask`. Without
    prompt lengths every token but the first of each sequence is marked (the first has no prediction). A prompt
    length must be at least 1: the first token of a sequence is never predicted, it has no log-prob.
    """
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("pack needs at least one sequence and no empty sequence")
    prompts = [1] * len(sequences) if prompt_lengths is None else list(prompt_lengths)
    if len(prompts) != len(sequences) or any(
        not 1 <= p <= len(s) for p, s in zip(prompts, sequences, strict=True)
    ):
        raise ValueError("need one prompt length per sequence, each in [1, len(sequence)]")
    lengths = tuple(len(s) for s in sequences)
    input_ids = torch.tensor([t for s in sequences for t in s], dtype=torch.long)  # (N,)
    position_ids = torch.cat([torch.arange(n) for n in lengths])  # (N,)
    completion_mask = torch.cat([torch.arange(n) >= p for n, p in zip(lengths, prompts, strict=True)])  # (N,)
    cu_seqlens = torch.zeros(len(lengths) + 1, dtype=torch.int32)  # (S+1,)
    cu_seqlens[1:] = torch.tensor(lengths).cumsum(0)
    return Packed(
        input_ids=input_ids[None],
        position_ids=position_ids[None],
        cu_seqlens=cu_seqlens,
        completion_mask=completion_mask[None],
        lengths=lengths,
    )


def unpack(values: Tensor, packed: Packed) -> list[Tensor]:
    """Split per-token values of a packed row, (1, N) or (N,), into one (L_i,) tensor per sequence (views)."""
    return list(values.reshape(-1).split(list(packed.lengths)))


def continues_sequence(position_ids: Tensor) -> Tensor:
    """(B, T) bool: token t belongs to the same sequence as token t-1 (its position is one more); False at t = 0.

    The same rule transformers uses to detect packed sequences, so both agree on where sequences start.
    """
    cont = torch.zeros_like(position_ids, dtype=torch.bool)  # (B, T)
    cont[:, 1:] = position_ids[:, 1:] == position_ids[:, :-1] + 1
    return cont


def packed_attention_mask(
    position_ids: Tensor, dtype: torch.dtype | None = None, window: int | None = None
) -> Tensor:
    """Block-diagonal causal mask (B, 1, T, T) from restarting `position_ids` (B, T); with a sliding `window`, a
    token sees itself and the window - 1 tokens before it at most.

    Boolean (True = query may attend to key) when `dtype` is None, the form `sdpa` takes; otherwise additive in
    `dtype` (0 allowed, finfo(dtype).min masked), the form `eager` takes. Memory is B*T*T elements: 256 MiB in bool
    for T = 16K, four times that in float32 — pack rows of a few thousand tokens, or use a flash kernel.
    """
    seq_id = torch.cumsum(~continues_sequence(position_ids), dim=-1)  # (B, T) sequence index within the row
    T = position_ids.shape[-1]
    idx = torch.arange(T, device=position_ids.device)
    back = idx[:, None] - idx[None, :]  # (T, T) query - key
    causal = (back >= 0) if window is None else (back >= 0) & (back < window)
    same = seq_id[:, :, None] == seq_id[:, None, :]  # (B, T, T)
    allowed = (same & causal)[:, None]  # (B, 1, T, T)
    if dtype is None:
        return allowed
    zero = torch.zeros((), dtype=dtype, device=position_ids.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


def attention_mask_for(model: Any, position_ids: Tensor) -> Tensor | dict[str, Tensor] | None:
    """The mask a packed row needs for `model`'s attention implementation (None: let position_ids speak): one
    mask, or {layer type: mask} when full and sliding-window layers mix."""
    if not takes_4d_mask(model):
        # flash_attention_2/3, flex_attention: transformers builds varlen attention / a BlockMask from
        # position_ids, and applies each layer's window itself.
        return None
    return per_layer_type(model, lambda dtype, window: packed_attention_mask(position_ids, dtype, window))


def takes_4d_mask(model: Any) -> bool:
    """Whether `model`'s attention implementation takes a 4D mask as is (sdpa, eager; not the flash kernels)."""
    return getattr(model.config, "_attn_implementation", "sdpa") in ("sdpa", "eager")


def per_layer_type(
    model: Any, build: Callable[[torch.dtype | None, int | None], Tensor]
) -> Tensor | dict[str, Tensor]:
    """`build(dtype, window)` in the form `model`'s implementation takes (bool for sdpa, additive in the model's
    dtype for eager), once per distinct window: one mask, or {layer type: mask} when full and sliding mix."""
    dtype = None if model.config._attn_implementation == "sdpa" else model.dtype
    windows = set(layer_windows(model.config))
    if len(windows) == 1:
        return build(dtype, windows.pop())
    return {
        "full_attention": build(dtype, None),
        "sliding_attention": build(dtype, model.config.sliding_window),
    }


@dataclass(frozen=True, slots=True)
class Spans:
    """Where each row's pieces of a `SharedPrompts` layout lie: its prompt [0, prompt) and each (non-empty)
    response's [start, end)."""

    prompts: tuple[int, ...]  # (U,) prompt length per row
    responses: tuple[tuple[tuple[int, int], ...], ...]  # per row, the responses' [start, end)


@dataclass(frozen=True, slots=True)
class SharedPrompts:
    """Responses that share a prompt, packed with one copy of it: row u of (U, L) is a distinct prompt, then each
    of its responses (right-padded). A response's positions continue from its prompt's length, and it sees the
    prompt and its own earlier tokens only (`shared_prompt_mask`): each response's log-probs are those of the
    sequence prompt + response run alone, while the prompt's tokens run once instead of once per response."""

    input_ids: Tensor  # (U, L) long
    position_ids: Tensor  # (U, L) long
    segment: Tensor  # (U, L) long: 0 the prompt, i >= 1 the row's i-th response, -1 padding
    predictor: Tensor  # (N,) long, flat index into (U*L) of the state that predicts each response token
    targets: Tensor  # (N,) long, the response tokens, the input sequences' in order
    spans: Spans  # the same pieces as index ranges (what `rlvr.models.shared_attention` runs)


def share_prompts(sequences: Sequence[Sequence[int]], prompt_lengths: Sequence[int]) -> SharedPrompts:
    """Pack `sequences` (prompt + response; the first `prompt_lengths[i]` tokens are prompt, at least 1) with one
    copy of each distinct prompt. The targets list every response token, sequence by sequence."""
    rows: dict[tuple[int, ...], list[int]] = {}  # prompt -> the row's tokens
    segments: dict[tuple[int, ...], list[int]] = {}
    positions: dict[tuple[int, ...], list[int]] = {}
    spans: dict[tuple[int, ...], list[tuple[int, int]]] = {}  # prompt -> its responses' [start, end)
    where: list[tuple[tuple[int, ...], int]] = []  # each sequence's prompt and where its response starts
    for seq, p in zip(sequences, prompt_lengths, strict=True):
        if not 1 <= p <= len(seq):
            raise ValueError("each prompt length must be in [1, len(sequence)]")
        prompt = tuple(seq[:p])
        if prompt not in rows:
            rows[prompt], segments[prompt], positions[prompt] = list(prompt), [0] * p, list(range(p))
            spans[prompt] = []
        start, response = len(rows[prompt]), list(seq[p:])
        where.append((prompt, start))
        if response:
            spans[prompt].append((start, start + len(response)))
            segments[prompt] += [len(spans[prompt])] * len(response)  # its response number, from 1
            positions[prompt] += range(p, p + len(response))
            rows[prompt] += response
    order = {prompt: u for u, prompt in enumerate(rows)}
    L = max(len(r) for r in rows.values())
    ids = torch.zeros((len(rows), L), dtype=torch.long)
    pos = torch.zeros((len(rows), L), dtype=torch.long)
    seg = torch.full((len(rows), L), -1, dtype=torch.long)
    for prompt, u in order.items():
        n = len(rows[prompt])
        ids[u, :n], pos[u, :n], seg[u, :n] = (
            torch.tensor(x) for x in (rows[prompt], positions[prompt], segments[prompt])
        )
    predictor: list[int] = []
    targets: list[int] = []
    for seq, p, (prompt, start) in zip(sequences, prompt_lengths, where, strict=True):
        # response token j is predicted by the prompt's last token (j = 0), then by response token j - 1
        base = order[prompt] * L
        predictor += [base + (p - 1 if j == 0 else start + j - 1) for j in range(len(seq) - p)]
        targets += seq[p:]
    layout = Spans(tuple(len(prompt) for prompt in rows), tuple(tuple(spans[prompt]) for prompt in rows))
    return SharedPrompts(
        ids,
        pos,
        seg,
        torch.tensor(predictor, dtype=torch.long),
        torch.tensor(targets, dtype=torch.long),
        layout,
    )


def shared_prompt_mask(
    shared: SharedPrompts, dtype: torch.dtype | None = None, window: int | None = None
) -> Tensor:
    """(U, 1, L, L) mask of a `SharedPrompts` layout: the prompt is causal, a response sees the prompt and its own
    earlier tokens (padding sees itself and what came before it: no query row is fully masked). Forms and
    `window` (in positions) as `packed_attention_mask`."""
    seg, pos = shared.segment, shared.position_ids
    L = seg.shape[-1]
    idx = torch.arange(L, device=seg.device)
    causal = idx[:, None] >= idx[None, :]  # (L, L) query at or after key
    visible = (seg[:, :, None] == seg[:, None, :]) | (seg[:, None, :] == 0)  # (U, L, L)
    allowed = causal & visible
    if window is not None:
        allowed &= (pos[:, :, None] - pos[:, None, :]) < window
    allowed = allowed[:, None]  # (U, 1, L, L)
    if dtype is None:
        return allowed
    zero = torch.zeros((), dtype=dtype, device=seg.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)
