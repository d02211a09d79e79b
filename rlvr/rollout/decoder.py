"""A lean forward pass of a Hugging Face decoder (the families of `rlvr.models.families`) with a KV cache, for
sampling.

It reads the live `nn.Module`: a `Decoder` holds references to the model's own weight tensors (embedding, q/k/v/o
projections, MLP, norms, lm_head), never copies, so an optimizer step is seen at once. What it replaces is the glue
(HF's cache objects, mask building, module calls, per-step position bookkeeping), which on small models and small
batches costs more than the arithmetic. Projections must be plain `nn.Linear` (merge LoRA adapters first).

Layout: every row is one sequence; its prompt is left-padded so that all prompts end at the same cache slot, and
each decode step writes all rows at one slot. Row b's token at slot s has position s - pad[b]; slots before
pad[b] are masked out. A sliding-window layer reads only its last `window` slots (padding lies before a row's
tokens, so slot distance is token distance). It knows nothing of sampling or stopping (see `fast.py`).
Supported: what `layers.unsupported` allows (RoPE types whose tables do not depend on the sequence length, full
and sliding attention, SiLU/GELU gated MLPs).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from rlvr.models.families import FAMILIES, logit_transform
from rlvr.rollout.cache import KVCache
from rlvr.rollout.layers import (
    ACTIVATIONS,
    Layer,
    Linear,
    layers_of,
    norm_weight,
    rms_norm,
    rope_tables,
    rotation,
    unsupported,
)

__all__ = ["Decoder", "KVCache"]


class Decoder:
    """Prefill and decode over a causal LM of a known family. Build one per `generate` call: it holds references
    to the model's weights and its RoPE tables."""

    def __init__(self, model: Any, max_positions: int, attention: str = "auto") -> None:
        """attention: "matmul" (batched matmuls over a transposed key cache), "sdpa" (F.scaled_dot_product_attention)
        or "auto" (matmul on CPU, sdpa elsewhere). Attention soft-capping (gemma2) always takes the matmuls: SDPA
        has no soft-cap."""
        reason = unsupported(model)
        if reason is not None:
            raise ValueError(f"{reason}: use HFEngine")
        if attention not in ("auto", "matmul", "sdpa"):
            raise ValueError(f"attention must be auto, matmul or sdpa, not {attention!r}")
        config = model.config
        family = FAMILIES[config.model_type]
        embedding = model.get_input_embeddings()
        self.embed = embedding.weight  # (V, D)
        device = self.embed.device
        # gemma: embeddings times sqrt(D), a float32 scalar cast to their dtype (as HF does)
        self.embed_scale = embedding.embed_scale.to(self.embed.dtype) if family.embed_scale else None
        attn = model.model.layers[0].self_attn
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = attn.head_dim
        self.scale = float(attn.scaling)  # hd^-0.5, or gemma's query_pre_attn_scalar^-0.5
        self.softcap = config.attn_logit_softcapping if family.attn_softcap else None
        self.qk_whole = family.qk_norm == "whole"
        self.activation = ACTIVATIONS[getattr(config, family.activation_key)]
        self.norm_fn = rms_norm(family.norm, torch.tensor(config.rms_norm_eps, device=device))
        self.ropes, rope_index = rope_tables(model, family, max_positions, self.head_dim)
        self.rotation = rotation(self.ropes[0].dims, self.head_dim, device)
        if self.ropes[0].cos.dtype != self.embed.dtype:  # the rotary module keeps float32 tables (olmo2)
            self._rope = self._rope_upcast  # type: ignore[method-assign]
        self.layers: list[Layer] = layers_of(model, family, rope_index)
        self.windows = sorted({layer.window for layer in self.layers}, key=lambda w: w or 0)
        self.norm = norm_weight(model.model.norm.weight, family.norm)  # (D,)
        self.lm_head = Linear.of(model.get_output_embeddings())  # tied: the same tensor as `embed`
        transform = logit_transform(config)
        self.logit_transform = None if transform.identity else transform
        self.matmul_attention = (
            attention == "matmul"
            or (attention == "auto" and device.type == "cpu")
            or self.softcap is not None
        )
        # baddbmm's additive term when no row has padding
        self.zero = torch.zeros((), dtype=self.embed.dtype, device=device)

    def new_cache(self, rows: int, capacity: int) -> KVCache:
        return KVCache(
            len(self.layers), rows, self.kv_heads, capacity, self.head_dim, self.embed, self.matmul_attention
        )

    def pad_bias(self, pad: Tensor, slots: int) -> Tensor | None:
        """Additive attention mask for `decode`: 0 on real slots, -inf on each row's left padding, in the layout
        its attention reads ((B, 1, 1, S) for SDPA, (B*KV, 1, S) for the CPU matmuls); None without padding."""
        if not bool((pad > 0).any()):
            return None
        B = pad.shape[0]
        slots = -(-slots // 16) * 16  # rows 16-aligned, as SDPA's memory-efficient kernel wants its mask
        left = torch.arange(slots, device=pad.device)[None] < pad[:, None]  # (B, S)
        bias = torch.zeros((B, slots), dtype=self.embed.dtype, device=pad.device).masked_fill_(
            left, float("-inf")
        )
        if self.matmul_attention:
            return bias[:, None].expand(B, self.kv_heads, slots).reshape(B * self.kv_heads, 1, slots)
        return bias[:, None, None]

    def _embed(self, ids: Tensor) -> Tensor:
        x = F.embedding(ids, self.embed)  # (N, D)
        return x if self.embed_scale is None else x * self.embed_scale

    def _rope(self, x: Tensor, cos: Tensor, sin: Tensor, out: Tensor | None = None) -> Tensor:
        """HF's rotary embedding (half-split layout): x * cos + rotate_half(x) * sin, cos/sin broadcast over heads;
        `out` may be the cache slot, saving a copy."""
        turned = x.roll(self.head_dim // 2, dims=-1) if self.rotation is None else x[..., self.rotation]
        return torch.addcmul(x * cos, turned, sin, out=out)

    def _rope_upcast(self, x: Tensor, cos: Tensor, sin: Tensor, out: Tensor | None = None) -> Tensor:
        """`_rope` with float32 tables on a lower-precision x (olmo2 keeps RoPE in float32): computed in float32,
        cast back to x's dtype, as HF's olmo2 does."""
        turned = x.roll(self.head_dim // 2, dims=-1) if self.rotation is None else x[..., self.rotation]
        y = torch.addcmul(x * cos, turned, sin)  # float32
        return y.to(x.dtype) if out is None else out.copy_(y)

    def _qk_norm(self, layer: Layer, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """q (N, H*hd), k (N, KV*hd) through the layer's q/k RMSNorms: over all heads at once (olmo2) or each head."""
        assert layer.q_norm is not None and layer.k_norm is not None
        if self.qk_whole:
            return self.norm_fn(q, layer.q_norm), self.norm_fn(k, layer.k_norm)
        N, hd = q.shape[0], self.head_dim
        q = self.norm_fn(q.view(N, -1, hd), layer.q_norm).view(N, -1)
        return q, self.norm_fn(k.view(N, -1, hd), layer.k_norm).view(N, -1)

    def _add(self, x: Tensor, proj: Linear, a: Tensor, post: Tensor | None) -> Tensor:
        """The residual add of a block's output: x + proj(a), or x + norm(proj(a)) with a norm after the block."""
        return proj.add_to(x, a) if post is None else x + self.norm_fn(proj(a), post)

    def _mlp(self, x: Tensor, layer: Layer) -> Tensor:
        """x plus the layer's gated MLP of x (norms around it as the family has them); x (N, D)."""
        h = x if layer.mlp_norm is None else self.norm_fn(x, layer.mlp_norm)
        return self._add(x, layer.down, self.activation(layer.gate(h)).mul_(layer.up(h)), layer.mlp_post)

    def _logits(self, h: Tensor) -> Tensor:
        """(N, V) float32 logits of final hidden states (N, D): the final norm, the head, its transform (gemma's
        soft-capping, in the head's dtype as HF's forward does)."""
        logits = self.lm_head(self.norm_fn(h, self.norm))
        return (logits if self.logit_transform is None else self.logit_transform(logits)).float()

    def _prefill_mask(self, pad: Tensor, T: int, window: int | None) -> Tensor | None:
        """Boolean (U, 1, T, T) mask of a prefill chunk, True = may attend; None when plain causal attention is
        it (SDPA's is_causal)."""
        if window is not None and window >= T:
            window = None  # it does not bite
        if window is None and not bool((pad > 0).any()) and self.softcap is None:
            return None
        slots = torch.arange(T, device=pad.device)
        back = slots[:, None] - slots[None, :]  # (T, T) query slot - key slot
        allowed = back >= 0 if window is None else (back >= 0) & (back < window)
        allowed = allowed & (slots[None, :] >= pad[:, None])[:, None, :]  # (U, T, T) real keys only
        # A pad query sees only itself (finite garbage, never read) so no row of the softmax is empty.
        return (allowed | torch.eye(T, dtype=torch.bool, device=pad.device))[:, None]

    def _prefill_attention(self, q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None) -> Tensor:
        """q (U, H, T, hd), k and v (U, KV, T, hd) -> (U, H, T, hd)."""
        # Repeat KV heads for the query heads: any SDPA backend then takes the mask (prefill is not the hot loop).
        k, v = (
            k.repeat_interleave(self.heads // self.kv_heads, dim=1),
            v.repeat_interleave(self.heads // self.kv_heads, dim=1),
        )  # (U, H, T, hd)
        if self.softcap is None:
            return F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None, scale=self.scale
            )
        assert mask is not None  # soft-capped scores, as HF's eager attention: (U, H, T, T) in memory
        scores = (q @ k.transpose(-1, -2)).mul_(self.scale).div_(self.softcap).tanh_().mul_(self.softcap)
        weights = scores.masked_fill_(~mask, float("-inf")).float().softmax(dim=-1).to(q.dtype)
        return weights @ v

    def _capped_scores(self, q: Tensor, keys: Tensor, bias: Tensor | None) -> Tensor:
        """gemma2's decode scores: cap * tanh(q k^T * scale / cap), then the padding bias. q (B*KV, G, hd), keys
        (B*KV, hd, n), bias (B*KV, 1, n) or None -> (B*KV, G, n)."""
        assert self.softcap is not None
        scores = torch.bmm(q, keys).mul_(self.scale).div_(self.softcap).tanh_().mul_(self.softcap)
        return scores if bias is None else scores.add_(bias)

    def prefill(
        self, ids: Tensor, pad: Tensor, cache: KVCache, rows: slice, start: int, repeat: int
    ) -> Tensor:
        """Run left-padded prompts `ids` (U, T) with `pad` (U,) pad tokens each; write their keys/values to cache
        slots [start, start+T) of `rows`, each prompt `repeat` times (its n samples share the prefill).
        Returns the logits at the last position, (U, V) float32."""
        U, T = ids.shape
        H, KV, hd = self.heads, self.kv_heads, self.head_dim
        positions = (torch.arange(T, device=ids.device)[None] - pad[:, None]).clamp(min=0)  # (U, T)
        ropes = [
            (r.cos[positions][:, :, None], r.sin[positions][:, :, None]) for r in self.ropes
        ]  # (U, T, 1, hd)
        masks = {window: self._prefill_mask(pad, T, window) for window in self.windows}
        x = self._embed(ids.flatten())  # (U*T, D)
        for i, layer in enumerate(self.layers):
            cos, sin = ropes[layer.rope]
            h = x if layer.attn_norm is None else self.norm_fn(x, layer.attn_norm)
            q, k = layer.q(h), layer.k(h)  # (U*T, H*hd), (U*T, KV*hd)
            if layer.q_norm is not None:
                q, k = self._qk_norm(layer, q, k)
            q = self._rope(q.view(U, T, H, hd), cos, sin).transpose(1, 2)  # (U, H, T, hd)
            k = self._rope(k.view(U, T, KV, hd), cos, sin).transpose(1, 2)  # (U, KV, T, hd)
            v = layer.v(h).view(U, T, KV, hd).transpose(1, 2)  # (U, KV, T, hd)
            cache.write(
                i, rows, start, k.repeat_interleave(repeat, dim=0), v.repeat_interleave(repeat, dim=0)
            )
            o = self._prefill_attention(q, k, v, masks[layer.window])  # (U, H, T, hd)
            x = self._add(x, layer.o, o.transpose(1, 2).reshape(U * T, H * hd), layer.attn_post)  # (U*T, D)
            x = self._mlp(x, layer)  # (U*T, D)
        return self._logits(x.view(U, T, -1)[:, -1])  # (U, V)

    def decode(self, tokens: Tensor, slot: int, pad: Tensor, bias: Tensor | None, cache: KVCache) -> Tensor:
        """One step for every row: `tokens` (B,) go into cache slot `slot`; returns next-token logits (B, V) float32.
        `bias` is `pad_bias(pad, S)` for any S > slot. The hot loop: on small models every kernel launch counts
        (in-place ops, residual adds fused into addmm, keys roped straight into the cache)."""
        B = tokens.shape[0]
        H, KV, hd, L = self.heads, self.kv_heads, self.head_dim, slot + 1
        positions = slot - pad  # (B,)
        ropes = [
            (r.cos.index_select(0, positions)[:, None], r.sin.index_select(0, positions)[:, None])
            for r in self.ropes
        ]  # (B, 1, hd)
        # Per window: the first slot read, how many, and the padding bias over them (SDPA's mask / baddbmm's term).
        spans = {}
        for window in self.windows:
            lo = 0 if window is None else max(0, L - window)
            span_bias = None if bias is None else bias.narrow(-1, lo, L - lo)
            spans[window] = (lo, L - lo, span_bias)
        fp32 = self.embed.dtype == torch.float32
        norm, act, scale, capped = self.norm_fn, self.activation, self.scale, self.softcap is not None
        x = self._embed(tokens)  # (B, D)
        layers = zip(self.layers, cache.k, cache.v, cache.k_flat, cache.v_flat, strict=True)
        for layer, keys, values, keys_flat, values_flat in layers:
            cos, sin = ropes[layer.rope]
            lo, n, mask = spans[layer.window]
            h = x if layer.attn_norm is None else norm(x, layer.attn_norm)
            q, k = layer.q(h), layer.k(h)  # (B, H*hd), (B, KV*hd)
            if layer.q_norm is not None:
                q, k = self._qk_norm(layer, q, k)
            q = self._rope(q.view(B, H, hd), cos, sin)  # (B, H, hd)
            self._rope(k.view(B, KV, hd), cos, sin, out=keys.select(cache.key_slot_dim, slot))
            values.select(2, slot).copy_(layer.v(h).view(B, KV, hd))
            # The H // KV query heads of one KV head become its queries: GQA without repeating the cache.
            if cache.keys_transposed:  # CPU: scores = bias + q k^T * scale in one batched matmul
                q = q.view(B * KV, H // KV, hd)
                keys_read = keys_flat.narrow(2, lo, n)  # (B*KV, hd, n)
                if capped:
                    scores = self._capped_scores(q, keys_read, mask)  # (B*KV, G, n)
                else:
                    scores = torch.baddbmm(self.zero if mask is None else mask, q, keys_read, alpha=scale)
                weights = scores.softmax(dim=-1) if fp32 else scores.float().softmax(dim=-1).to(x.dtype)
                o = torch.bmm(weights, values_flat.narrow(1, lo, n))  # (B*KV, G, hd)
            else:
                q = q.view(B, KV, H // KV, hd)
                o = F.scaled_dot_product_attention(
                    q, keys.narrow(2, lo, n), values.narrow(2, lo, n), attn_mask=mask, scale=scale
                )
            o = o.reshape(B, H * hd)
            # Residual adds: fused into the projection's addmm, unless a norm follows the block (gemma, olmo2).
            x = layer.o.add_to(x, o) if layer.attn_post is None else x + norm(layer.o(o), layer.attn_post)
            h = x if layer.mlp_norm is None else norm(x, layer.mlp_norm)
            a = act(layer.gate(h)).mul_(layer.up(h))  # (B, I)
            x = layer.down.add_to(x, a) if layer.mlp_post is None else x + norm(layer.down(a), layer.mlp_post)
        return self._logits(x)  # (B, V)
