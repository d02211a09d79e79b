"""Attention over `SharedPrompts` rows without an (L, L) mask: the prompt attends causally to itself, each response
to the prompt and to its own earlier tokens, one SDPA call each.

The packed row of a group (prompt, then n responses) is L = P + ΣR tokens long; a dense mask over it costs L²
scores per head where the attention that counts is P² + Σ R·(P + R): with P = 60 and 8 responses of ~80 tokens,
a dense (L, L) SDPA spent 23% of SmolLM2-135M's forward + backward on a CPU (1.3 of 5.7 s), most of it on masked
pairs; this spends what the sequences would alone. A response's query block is bottom-right causal against
prompt + response (`causal_lower_right`: no mask built, the kernels know the shape); a sliding window (in
positions, as every such family counts it) takes an explicit mask of that block.

It is a transformers attention function (`AttentionInterface`), switched on for one forward by `active(model)`:
transformers passes the forward's extra keyword `shared_spans` down to every attention layer (and with it
`sliding_window` for the windowed layers), and builds no mask of its own for it. Softcapped attention (gemma2)
has no SDPA form: `supported` says so and the caller keeps the dense mask (`packing.shared_prompt_mask`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.attention.bias import causal_lower_right

from rlvr.models.packing import Spans

NAME = "rlvr_shared_prompts"


def supported(model: Any) -> bool:
    """Whether `model` runs its attention through SDPA (no softcap, no flash-only layout) and recomputes no layer
    in backward: gradient checkpointing would rerun the attention after `active` has switched it back."""
    sdpa = getattr(model.config, "_attn_implementation", None) == "sdpa"
    name = "is_activation_checkpointing"  # transformers >= 5.x; is_gradient_checkpointing before (deprecated)
    checkpointing = getattr(model, name if hasattr(type(model), name) else "is_gradient_checkpointing", False)
    return sdpa and not checkpointing


def _window_mask(queries: int, keys: int, prompt: int, window: int, device: torch.device) -> Tensor:
    """(queries, keys) bool mask of a response block (keys: prompt then response) under a sliding window."""
    q_pos = prompt + torch.arange(queries, device=device)[:, None]
    k_pos = torch.arange(keys, device=device)[None, :]  # prompt positions 0..P-1, then P.. for the response
    return (k_pos <= q_pos) & (q_pos - k_pos < window)


def _block(q: Tensor, k: Tensor, v: Tensor, prompt: int, scale: float | None, window: int | None) -> Tensor:
    """Attention of a query block (1, H, R, d) over keys (1, Hkv, K, d) whose last R are the block's own tokens."""
    R, K = q.shape[2], k.shape[2]
    gqa = q.shape[1] != k.shape[1]
    device = q.device.type
    if torch.is_autocast_enabled(device):  # what autocast does for SDPA, which a CausalBias call bypasses
        dtype = torch.get_autocast_dtype(device)
        q, k, v = q.to(dtype), k.to(dtype), v.to(dtype)
    if window is not None and window < K:
        mask: Any = _window_mask(R, K, prompt if R < K else 0, window, q.device)
    else:
        mask = causal_lower_right(R, K)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale, enable_gqa=gqa)


def attention(
    module: Any,
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attention_mask: Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    sliding_window: int | None = None,
    shared_spans: Spans | None = None,
    **kwargs: Any,
) -> tuple[Tensor, None]:
    """query (U, H, L, d), key and value (U, Hkv, L, d) -> (U, L, H, d), as transformers' sdpa function returns."""
    if shared_spans is None:
        raise ValueError(f"attention {NAME!r} needs the shared_spans of the rows")
    rows = []
    for u, (prompt, responses) in enumerate(zip(shared_spans.prompts, shared_spans.responses, strict=True)):
        q, k, v = query[u : u + 1], key[u : u + 1], value[u : u + 1]
        pieces = [_block(q[:, :, :prompt], k[:, :, :prompt], v[:, :, :prompt], 0, scaling, sliding_window)]
        end = prompt
        for start, end in responses:
            keys = torch.cat([k[:, :, :prompt], k[:, :, start:end]], dim=2)
            values = torch.cat([v[:, :, :prompt], v[:, :, start:end]], dim=2)
            pieces.append(_block(q[:, :, start:end], keys, values, prompt, scaling, sliding_window))
        if end < query.shape[2]:  # padding: zeros, read by nothing
            pieces.append(q.new_zeros(1, q.shape[1], query.shape[2] - end, value.shape[-1]))
        rows.append(torch.cat(pieces, dim=2))
    return torch.cat(rows).transpose(1, 2).contiguous(), None


def _no_mask(*args: Any, **kwargs: Any) -> None:
    return None


@functools.cache
def _register() -> None:
    """`attention` under NAME in transformers' registries, with no mask of its own (once per process)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS

    AttentionInterface.register(NAME, attention)
    ALL_MASK_ATTENTION_FUNCTIONS.register(NAME, _no_mask)


@contextlib.contextmanager
def active(model: Any) -> Iterator[None]:
    """`model`'s attention is `attention` inside the block (its configuration's implementation switched, then
    restored)."""
    _register()
    config = model.config
    original = config._attn_implementation
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = original
