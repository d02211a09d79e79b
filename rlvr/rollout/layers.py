"""The fast decoder's view of a model: each layer's weights (references to the live parameters, never copies), the
RMSNorm, activation and RoPE tables its family uses, and whether it can run a model at all (`unsupported`).

Families differ only in data (`rlvr.models.families.Family`): which norms exist, how a norm applies its weight,
q/k norms, fused projections, windows. Everything is decided here, once per `Decoder`, so the decoder's loops
carry no per-family branches beyond `is None` checks on optional weights.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rlvr.models.families import FAMILIES, Family, NormKind, layer_windows, other_layer_types

# RoPE types with static tables ("dynamic" and "longrope" rescale with the sequence length).
ROPE_TYPES = ("default", "linear", "llama3", "yarn")
# MLP activations by their config name, as transformers' ACT2FN computes them.
ACTIVATIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "gelu_pytorch_tanh": partial(F.gelu, approximate="tanh"),
}


def unsupported(model: Any) -> str | None:
    """Why the fast decoder cannot run `model` (one line), or None if it can."""
    config = model.config
    family = FAMILIES.get(config.model_type)
    if family is None:
        return f"the fast engine knows {', '.join(FAMILIES)} decoders, not {config.model_type!r}"
    rope = getattr(config, "rope_parameters", None) or {}
    ropes = list(rope.values()) if family.rope_per_layer_type else [rope]
    for params in ropes:
        kind = (params or {}).get("rope_type", "default")
        if kind not in ROPE_TYPES:
            return f"the fast engine supports RoPE types {ROPE_TYPES}, not {kind!r}"
    if other_layer_types(config):
        return f"the fast engine has no {', '.join(sorted(other_layer_types(config)))} layers"
    if getattr(config, "use_bidirectional_attention", False):
        return "the fast engine decodes causally, and this model attends bidirectionally"
    activation = getattr(config, family.activation_key, None)
    if activation not in ACTIVATIONS:
        return f"the fast engine's MLP activations are {', '.join(ACTIVATIONS)}, not {activation!r}"
    return None


class Linear(NamedTuple):
    weight_t: Tensor  # (in, out): a transposed view of the model's own (out, in) parameter, not a copy
    bias: Tensor | None

    @staticmethod
    def of(module: Any) -> Linear:
        if not isinstance(module, nn.Linear):
            raise ValueError(
                f"the fast engine reads plain nn.Linear weights, got {type(module).__name__}: merge adapters"
            )
        return Linear(module.weight.t(), module.bias)

    @staticmethod
    def split(module: Any, sizes: list[int]) -> list[Linear]:
        """A fused projection (phi3's qkv_proj, gate_up_proj) as one Linear per output block: views of its rows."""
        whole, parts, start = Linear.of(module), [], 0
        for n in sizes:
            bias = None if whole.bias is None else whole.bias.narrow(0, start, n)
            parts.append(Linear(whole.weight_t.narrow(1, start, n), bias))
            start += n
        return parts

    def __call__(self, x: Tensor) -> Tensor:
        """x @ W^T + b for 2-D x (one addmm / mm, no per-call transpose)."""
        return torch.mm(x, self.weight_t) if self.bias is None else torch.addmm(self.bias, x, self.weight_t)

    def add_to(self, x: Tensor, a: Tensor) -> Tensor:
        """x + a @ W^T (+ b) for 2-D x, a: the residual add rides in the matmul (addmm's beta term)."""
        out = torch.addmm(x, a, self.weight_t)
        return out if self.bias is None else out.add_(self.bias)


class Layer(NamedTuple):
    """One decoder layer's weights (references, not copies; a (1 + w) norm's weight is that sum, see `norm_weight`)
    and its attention settings. A missing norm is None (olmo2 has none before attention or MLP; only gemma and
    olmo2 have norms after them)."""

    attn_norm: Tensor | None  # (D,) before attention
    q: Linear
    k: Linear
    v: Linear
    q_norm: Tensor | None  # (hd,) per head or (H*hd,) whole, see Family.qk_norm
    k_norm: Tensor | None
    o: Linear
    attn_post: Tensor | None  # (D,) on the attention output, before the residual add
    mlp_norm: Tensor | None  # (D,) before the MLP
    gate: Linear
    up: Linear
    down: Linear
    mlp_post: Tensor | None  # (D,) on the MLP output, before the residual add
    window: int | None  # attends to itself and window - 1 slots before it; None: every slot
    rope: int  # index of its RoPE table

    @staticmethod
    def of(layer: Any, family: Family, config: Any, window: int | None, rope: int) -> Layer:
        attn, mlp = layer.self_attn, layer.mlp
        if family.fused:
            H, KV, hd = config.num_attention_heads, config.num_key_value_heads, attn.head_dim
            q, k, v = Linear.split(attn.qkv_proj, [H * hd, KV * hd, KV * hd])
            gate, up = Linear.split(mlp.gate_up_proj, [config.intermediate_size] * 2)
        else:
            q, k, v = Linear.of(attn.q_proj), Linear.of(attn.k_proj), Linear.of(attn.v_proj)
            gate, up = Linear.of(mlp.gate_proj), Linear.of(mlp.up_proj)

        def norm(name: str) -> Tensor:
            return norm_weight(getattr(layer, name).weight, family.norm)

        if not family.post_norms:  # Llama: input_layernorm, then post_attention_layernorm before the MLP
            norms: tuple[Tensor | None, ...] = (
                norm("input_layernorm"),
                None,
                norm("post_attention_layernorm"),
                None,
            )
        elif family.pre_norms:  # gemma: a norm before and after each of attention and MLP
            norms = (
                norm("input_layernorm"),
                norm("post_attention_layernorm"),
                norm("pre_feedforward_layernorm"),
                norm("post_feedforward_layernorm"),
            )
        else:  # olmo2: after each only
            norms = (None, norm("post_attention_layernorm"), None, norm("post_feedforward_layernorm"))
        qk = family.qk_norm is not None
        return Layer(
            attn_norm=norms[0],
            q=q,
            k=k,
            v=v,
            q_norm=norm_weight(attn.q_norm.weight, family.norm) if qk else None,
            k_norm=norm_weight(attn.k_norm.weight, family.norm) if qk else None,
            o=Linear.of(attn.o_proj),
            attn_post=norms[1],
            mlp_norm=norms[2],
            gate=gate,
            up=up,
            down=Linear.of(mlp.down_proj),
            mlp_post=norms[3],
            window=window,
            rope=rope,
        )


def norm_weight(weight: Tensor, kind: NormKind) -> Tensor:
    """The tensor `rms_norm` multiplies by: the parameter itself, or for gemma's (1 + w) norms that sum in float32,
    a (D,) copy made when the decoder is built (once per generate call, so it still follows every update)."""
    return 1 + weight.float() if kind == "one_plus" else weight


def rms_norm(kind: NormKind, eps: Tensor) -> Callable[[Tensor, Tensor], Tensor]:
    """HF's RMSNorm of `kind` over the last dim: float32 statistics, then the weight (see `Family.norm` for the
    three orders of weight and cast). 4 kernels where F.rms_norm decomposes into ~10 on CPU: mean(x^2) + eps as
    norm(x)^2 / D + eps, one norm and one multiply-add. eps: float32, 0-dim."""

    def scaled(x: Tensor) -> Tensor:  # x / rms(x) in float32
        xf = x if x.dtype == torch.float32 else x.float()
        norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True)  # (N, 1)
        return xf * torch.addcmul(eps, norm, norm, value=1 / x.shape[-1]).rsqrt_()

    def llama(x: Tensor, weight: Tensor) -> Tensor:  # the hot one: `scaled` inlined
        xf = x if x.dtype == torch.float32 else x.float()
        norm = torch.linalg.vector_norm(xf, dim=-1, keepdim=True)  # (N, 1)
        y = xf * torch.addcmul(eps, norm, norm, value=1 / x.shape[-1]).rsqrt_()
        return weight * (y if x.dtype == torch.float32 else y.to(x.dtype))

    def weight_first(x: Tensor, weight: Tensor) -> Tensor:
        y = weight * scaled(x)
        return y if x.dtype == torch.float32 else y.to(x.dtype)

    def one_plus(x: Tensor, weight: Tensor) -> Tensor:  # weight is 1 + w already, float32
        y = scaled(x).mul_(weight)
        return y if x.dtype == torch.float32 else y.to(x.dtype)

    return {"llama": llama, "weight_first": weight_first, "one_plus": one_plus}[kind]


class Rope(NamedTuple):
    """RoPE tables for positions 0..S-1 in the model's dtype, laid out so rope(x) = x * cos + rotate(x) * sin."""

    cos: Tensor  # (S, hd); 1 on the dims partial rotary leaves alone
    sin: Tensor  # (S, hd); rotate_half's sign folded in; 0 on the dims partial rotary leaves alone
    dims: int  # dims that rotate: hd, or fewer with partial rotary (phi3's partial_rotary_factor)


def rope_tables(model: Any, family: Family, positions: int, head_dim: int) -> tuple[list[Rope], list[int]]:
    """The model's own rotary module computes each table (scaled RoPE matches HF exactly); gemma3 has one per layer
    type. Returns the tables and each layer's index into them."""
    body, config = model.model, model.config
    like = model.get_input_embeddings().weight[:1]
    ids = torch.arange(positions, device=like.device)[None]  # (1, S)
    if not family.rope_per_layer_type:
        return [_table(body.rotary_emb(like, ids), head_dim)], [0] * config.num_hidden_layers
    kinds = sorted(set(config.layer_types))
    tables = [_table(body.rotary_emb(like, ids, kind), head_dim) for kind in kinds]
    return tables, [kinds.index(kind) for kind in config.layer_types[: config.num_hidden_layers]]


def _table(cos_sin: tuple[Tensor, Tensor], head_dim: int) -> Rope:
    """HF's (1, S, r) cos and sin, r <= hd rotary dims, as (S, hd) `Rope` tables."""
    cos, sin = cos_sin[0][0], cos_sin[1][0]  # (S, r)
    half = cos.shape[-1] // 2
    # rotate_half(x) = roll(x, half) with its first half negated: fold that sign into the sin table.
    sin = torch.cat((-sin[:, :half], sin[:, half:]), dim=-1)
    rest = head_dim - cos.shape[-1]
    # The dims partial rotary leaves alone: x * 1 + turned * 0.
    return Rope(F.pad(cos, (0, rest), value=1.0), F.pad(sin, (0, rest)), cos.shape[-1])


def rotation(rotary_dims: int, head_dim: int, device: torch.device) -> Tensor | None:
    """Partial rotary: the permutation of a head's dims that rotate_half applies to its first `rotary_dims` (the
    rest stay put); None when the whole head rotates (a plain roll by hd/2 then)."""
    if rotary_dims == head_dim:
        return None
    half = rotary_dims // 2
    index = torch.arange(head_dim, device=device)
    index[:half] += half
    index[half:rotary_dims] -= half
    return index


def layers_of(model: Any, family: Family, rope_index: list[int]) -> list[Layer]:
    config = model.config
    windows = layer_windows(config)
    return [
        Layer.of(layer, family, config, windows[i], rope_index[i])
        for i, layer in enumerate(model.model.layers[: config.num_hidden_layers])
    ]
