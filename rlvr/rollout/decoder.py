"""A lean forward pass of a Hugging Face Qwen2 / Llama decoder with a KV cache, for sampling.

It reads the live `nn.Module`: a `Decoder` holds references to the model's own weight tensors (embedding, q/k/v/o
projections, MLP, norms, lm_head), never copies, so an optimizer step is seen at once. What it replaces is the glue
(HF's cache objects, mask building, module calls, per-step position bookkeeping), which on small models and small
batches costs more than the arithmetic. Projections must be plain `nn.Linear` (merge LoRA adapters first).

Layout: every row is one sequence; its prompt is left-padded so that all prompts end at the same cache slot, and
each decode step writes all rows at one slot. Row b's token at slot s has position s - pad[b]; slots before
pad[b] are masked out. It knows nothing of sampling or stopping (see `fast.py`).
Supported: full attention (no sliding window) and RoPE types whose tables do not depend on the sequence length.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

ARCHS = ("qwen2", "llama")
# RoPE types with static tables ("dynamic" and "longrope" rescale with the sequence length).
ROPE_TYPES = ("default", "linear", "llama3", "yarn")


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


class Linear(NamedTuple):
    weight_t: torch.Tensor  # (in, out): a transposed view of the model's own (out, in) parameter, not a copy
    bias: torch.Tensor | None

    @staticmethod
    def of(module: Any) -> Linear:
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f"the fast engine reads plain nn.Linear weights, got {type(module).__name__}: merge adapters"
            )
        return Linear(module.weight.t(), module.bias)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x @ W^T + b for 2-D x (one addmm / mm, no per-call transpose)."""
        return torch.mm(x, self.weight_t) if self.bias is None else torch.addmm(self.bias, x, self.weight_t)

    def add_to(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        """x + a @ W^T (+ b) for 2-D x, a: the residual add rides in the matmul (addmm's beta term)."""
        out = torch.addmm(x, a, self.weight_t)
        return out if self.bias is None else out.add_(self.bias)


class Layer(NamedTuple):
    """One decoder layer's weights (references, not copies)."""

    attn_norm: torch.Tensor  # (D,)
    q: Linear
    k: Linear
    v: Linear
    o: Linear
    mlp_norm: torch.Tensor  # (D,)
    gate: Linear
    up: Linear
    down: Linear

    @staticmethod
    def of(layer: Any) -> Layer:
        attn, mlp = layer.self_attn, layer.mlp
        return Layer(
            attn_norm=layer.input_layernorm.weight,
            q=Linear.of(attn.q_proj),
            k=Linear.of(attn.k_proj),
            v=Linear.of(attn.v_proj),
            o=Linear.of(attn.o_proj),
            mlp_norm=layer.post_attention_layernorm.weight,
            gate=Linear.of(mlp.gate_proj),
            up=Linear.of(mlp.up_proj),
            down=Linear.of(mlp.down_proj),
        )


class Decoder:
    """Prefill and decode over a `Qwen2ForCausalLM` / `LlamaForCausalLM`. Build one per `generate` call: it holds
    references to the model's weights and a RoPE table."""

    def __init__(self, model: Any, max_positions: int, attention: str = "auto") -> None:
        """attention: "matmul" (batched matmuls over a transposed key cache), "sdpa" (F.scaled_dot_product_attention)
        or "auto" (matmul on CPU, sdpa elsewhere)."""
        config = model.config
        if config.model_type not in ARCHS:
            raise ValueError(
                f"the fast engine knows {', '.join(ARCHS)} decoders, not {config.model_type!r}: use HFEngine"
            )
        rope_type = (getattr(config, "rope_parameters", None) or {}).get("rope_type", "default")
        if rope_type not in ROPE_TYPES:
            raise ValueError(
                f"the fast engine supports RoPE types {ROPE_TYPES}, not {rope_type!r}: use HFEngine"
            )
        if any(kind != "full_attention" for kind in getattr(config, "layer_types", None) or []):
            raise ValueError("the fast engine has no sliding-window attention: use HFEngine")
        if config.hidden_act != "silu":
            raise ValueError(
                f"the fast engine's MLP is SwiGLU (silu), not {config.hidden_act!r}: use HFEngine"
            )
        body = model.model
        self.embed = model.get_input_embeddings().weight  # (V, D)
        self.layers = [Layer.of(layer) for layer in body.layers]
        self.norm = body.norm.weight  # (D,)
        self.lm_head = Linear.of(model.get_output_embeddings())  # tied: the same tensor as `embed`
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        device = self.embed.device
        if attention not in ("auto", "matmul", "sdpa"):
            raise ValueError(f"attention must be auto, matmul or sdpa, not {attention!r}")
        self.matmul_attention = attention == "matmul" or (attention == "auto" and device.type == "cpu")
        self.eps = torch.tensor(config.rms_norm_eps, device=device)  # float32, 0-dim
        # baddbmm's additive term when no row has padding
        self.zero = torch.zeros((), dtype=self.embed.dtype, device=device)
        # The model's own rotary module computes the table, so scaled RoPE (llama3, yarn) matches HF exactly.
        positions = torch.arange(max_positions, device=device)[None]  # (1, S)
        cos, sin = body.rotary_emb(self.embed[:1], positions)  # (1, S, hd) each, in the model's dtype
        half = self.head_dim // 2
        self.cos = cos[0]  # (S, hd)
        # rotate_half(x) = roll(x, half) with its first half negated: fold that sign into the sin table.
        self.sin = torch.cat((-sin[0, :, :half], sin[0, :, half:]), dim=-1)  # (S, hd)

    def new_cache(self, rows: int, capacity: int) -> KVCache:
        return KVCache(
            len(self.layers), rows, self.kv_heads, capacity, self.head_dim, self.embed, self.matmul_attention
        )

    def pad_bias(self, pad: torch.Tensor, slots: int) -> torch.Tensor | None:
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

    def _norm(self, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """HF's RMSNorm (float32 statistics, weight applied in the input dtype) in 4 kernels where F.rms_norm
        decomposes into ~10 on CPU: mean(x^2) + eps as norm(x)^2 / D + eps, one norm and one multiply-add."""
        xf = x if x.dtype == torch.float32 else x.float()
        norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True)  # (N, 1)
        scale = torch.addcmul(self.eps, norm, norm, value=1 / x.shape[-1]).rsqrt_()  # (N, 1)
        y = xf * scale
        return weight * (y if x.dtype == torch.float32 else y.to(x.dtype))

    def _rope(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """HF's rotary embedding (half-split layout): x * cos + rotate_half(x) * sin, cos/sin broadcast over heads;
        `out` may be the cache slot, saving a copy."""
        return torch.addcmul(x * cos, x.roll(self.head_dim // 2, dims=-1), sin, out=out)

    def prefill(
        self, ids: torch.Tensor, pad: torch.Tensor, cache: KVCache, rows: slice, start: int, repeat: int
    ) -> torch.Tensor:
        """Run left-padded prompts `ids` (U, T) with `pad` (U,) pad tokens each; write their keys/values to cache
        slots [start, start+T) of `rows`, each prompt `repeat` times (its n samples share the prefill).
        Returns the logits at the last position, (U, V) float32."""
        U, T = ids.shape
        H, KV, hd = self.heads, self.kv_heads, self.head_dim
        positions = (torch.arange(T, device=ids.device)[None] - pad[:, None]).clamp(min=0)  # (U, T)
        cos, sin = self.cos[positions][:, :, None], self.sin[positions][:, :, None]  # (U, T, 1, hd)
        mask = None
        if bool((pad > 0).any()):
            slots = torch.arange(T, device=ids.device)
            causal = slots[None, :] <= slots[:, None]  # (T, T) query row, key column
            real_key = slots[None, :] >= pad[:, None]  # (U, T)
            # A pad query sees only itself (finite garbage, never read) so no row of the softmax is empty.
            mask = (causal & real_key[:, None, :]) | torch.eye(T, dtype=torch.bool, device=ids.device)
            mask = mask[:, None]  # (U, 1, T, T)
        x = F.embedding(ids.flatten(), self.embed)  # (U*T, D)
        for i, layer in enumerate(self.layers):
            h = self._norm(x, layer.attn_norm)
            q = self._rope(layer.q(h).view(U, T, H, hd), cos, sin).transpose(1, 2)  # (U, H, T, hd)
            k = self._rope(layer.k(h).view(U, T, KV, hd), cos, sin).transpose(1, 2)  # (U, KV, T, hd)
            v = layer.v(h).view(U, T, KV, hd).transpose(1, 2)  # (U, KV, T, hd)
            cache.write(
                i, rows, start, k.repeat_interleave(repeat, dim=0), v.repeat_interleave(repeat, dim=0)
            )
            # Repeat KV heads for the query heads: any SDPA backend then takes the mask (prefill is not the hot loop).
            k, v = k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)  # (U, H, T, hd)
            o = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, is_causal=mask is None
            )  # (U, H, T, hd)
            x = layer.o.add_to(x, o.transpose(1, 2).reshape(U * T, H * hd))  # (U*T, D)
            h = self._norm(x, layer.mlp_norm)
            x = layer.down.add_to(x, F.silu(layer.gate(h)).mul_(layer.up(h)))  # (U*T, D)
        return self.lm_head(self._norm(x.view(U, T, -1)[:, -1], self.norm)).float()  # (U, V)

    def decode(
        self, tokens: torch.Tensor, slot: int, pad: torch.Tensor, bias: torch.Tensor | None, cache: KVCache
    ) -> torch.Tensor:
        """One step for every row: `tokens` (B,) go into cache slot `slot`; returns next-token logits (B, V) float32.
        `bias` is `pad_bias(pad, S)` for any S > slot. The hot loop: on small models every kernel launch counts
        (in-place ops, residual adds fused into addmm, keys roped straight into the cache)."""
        B = tokens.shape[0]
        H, KV, hd, L = self.heads, self.kv_heads, self.head_dim, slot + 1
        positions = slot - pad  # (B,)
        cos = self.cos.index_select(0, positions)[:, None]  # (B, 1, hd)
        sin = self.sin.index_select(0, positions)[:, None]  # (B, 1, hd)
        mask = None if bias is None else bias.narrow(-1, 0, L)  # SDPA's
        scores_init = self.zero if mask is None else mask  # baddbmm's additive term (CPU)
        fp32 = self.embed.dtype == torch.float32
        x = F.embedding(tokens, self.embed)  # (B, D)
        layers = zip(self.layers, cache.k, cache.v, cache.k_flat, cache.v_flat, strict=True)
        for layer, keys, values, keys_flat, values_flat in layers:
            h = self._norm(x, layer.attn_norm)
            q = self._rope(layer.q(h).view(B, H, hd), cos, sin)  # (B, H, hd)
            self._rope(layer.k(h).view(B, KV, hd), cos, sin, out=keys.select(cache.key_slot_dim, slot))
            values.select(2, slot).copy_(layer.v(h).view(B, KV, hd))
            # The H // KV query heads of one KV head become its queries: GQA without repeating the cache.
            if cache.keys_transposed:  # CPU: scores = bias + q k^T / sqrt(hd) in one batched matmul
                q = q.view(B * KV, H // KV, hd)
                scores = torch.baddbmm(
                    scores_init, q, keys_flat.narrow(2, 0, L), alpha=hd**-0.5
                )  # (B*KV, G, L)
                weights = scores.softmax(dim=-1) if fp32 else scores.float().softmax(dim=-1).to(x.dtype)
                o = torch.bmm(weights, values_flat.narrow(1, 0, L))  # (B*KV, G, hd)
            else:
                q = q.view(B, KV, H // KV, hd)
                o = F.scaled_dot_product_attention(
                    q, keys.narrow(2, 0, L), values.narrow(2, 0, L), attn_mask=mask
                )
            x = layer.o.add_to(x, o.reshape(B, H * hd))  # (B, D)
            h = self._norm(x, layer.mlp_norm)
            x = layer.down.add_to(x, F.silu(layer.gate(h)).mul_(layer.up(h)))  # (B, D)
        return self.lm_head(self._norm(x, self.norm)).float()  # (B, V)
