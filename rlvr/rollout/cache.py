"""The fast engine's KV cache: every layer's keys and values for a batch of rows, one slot per token.

Slot s of row b holds that row's token at position s - pad[b] (prompts are left-padded to end at one slot); see
`decoder.py`. Every layer keeps every slot, sliding-window layers included (their attention reads only the last
`window` slots): simpler than a ring buffer, and the same memory as a full-attention model of that size.
"""

from __future__ import annotations

import torch


class KVCache:
    """Keys and values of every layer: values (B, KV, capacity, hd); keys the same for SDPA, or transposed,
    (B, KV, hd, capacity), for matmul attention, where q @ k^T is then a plain batched matmul (~30% faster on CPU).
    Rows can be dropped and capacity grown (`resize`), so memory follows the live rows, not the worst case."""

    def __init__(
        self,
        layers: int,
        rows: int,
        kv_heads: int,
        capacity: int,
        head_dim: int,
        like: torch.Tensor,
        keys_transposed: bool,
    ):
        self.keys_transposed = keys_transposed
        self.key_slot_dim = 3 if self.keys_transposed else 2
        k_shape = (
            (rows, kv_heads, head_dim, capacity)
            if self.keys_transposed
            else (rows, kv_heads, capacity, head_dim)
        )
        v_shape = (rows, kv_heads, capacity, head_dim)
        # Zeros, not empty: slots left of a short prompt are masked, but NaN garbage there would still leak (0 * NaN).
        self.k = [torch.zeros(k_shape, dtype=like.dtype, device=like.device) for _ in range(layers)]
        self.v = [torch.zeros(v_shape, dtype=like.dtype, device=like.device) for _ in range(layers)]
        self._flatten()

    def _flatten(self) -> None:
        """(B*KV, ...) views of every layer's keys and values, for the batched matmuls of CPU attention."""
        self.k_flat = [k.flatten(0, 1) for k in self.k]  # (B*KV, hd, C) on CPU
        self.v_flat = [v.flatten(0, 1) for v in self.v]  # (B*KV, C, hd)

    @property
    def capacity(self) -> int:
        return self.v[0].shape[2]

    def write(self, layer: int, rows: slice, start: int, k: torch.Tensor, v: torch.Tensor) -> None:
        """Store k, v (R, KV, T, hd) in slots [start, start+T) of `rows`."""
        T = k.shape[2]
        keys = self.k[layer][rows].narrow(self.key_slot_dim, start, T)
        keys.copy_(k.transpose(2, 3) if self.keys_transposed else k)
        self.v[layer][rows].narrow(2, start, T).copy_(v)

    def resize(self, keep: torch.Tensor | None, capacity: int, used: int) -> None:
        """Keep rows `keep` (all if None) and the first `used` slots, in a cache of `capacity` slots.
        One layer at a time, so the peak is one layer over the cache's size."""
        for cache, dim in ((self.k, self.key_slot_dim), (self.v, 2)):
            for i, old in enumerate(cache):
                rows = old if keep is None else old.index_select(0, keep)
                shape = list(rows.shape)
                shape[dim] = capacity
                new = torch.empty(shape, dtype=old.dtype, device=old.device)
                # Slots >= used are written before they are read.
                new.narrow(dim, 0, used).copy_(rows.narrow(dim, 0, used))
                cache[i] = new
        self._flatten()

    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.k + self.v)
