"""What sets each decoder family apart from Llama, as data: the fast engine's decoder (`rlvr.rollout.layers`) reads
its layers through a `Family`, and the trainer's log-probs and packed masks read the window and head rules here.

Every family below is a pre-norm decoder with RMSNorm, RoPE and a gated MLP, the Llama layer, and differs in a
few switches, each checked against transformers' own modeling code (5.24):
  qwen2, llama, mistral: the Llama layer; qwen2 has q/k/v biases; mistral's sliding window covers every layer.
  qwen3: RMSNorm of each query/key head before RoPE.
  gemma2: embeddings times sqrt(hidden), RMSNorm weight used as (1 + w) in float32, four norms per layer (before and
    after attention and MLP), GELU-tanh MLP, attention scale query_pre_attn_scalar^-0.5, tanh soft-capping of the
    attention scores and of the final logits, sliding and global layers alternating (`layer_types`).
  gemma3_text: gemma2's layer without attention soft-capping, plus (1 + w) q/k norms per head and its own RoPE base
    for sliding layers (`rope_parameters` per layer type).
  phi3: fused q/k/v and gate/up projections, possibly partial rotary (only the first dims of a head rotate).
  olmo2: no norm before attention or MLP; a norm after each (before the residual add); q/k RMSNorm over the whole
    projection (all heads together), weight applied before the cast back (`(w * x).to(dtype)`).
A model type not listed here still loads and trains (its backbone and head are HF's); rollouts then go through the
hf engine. Its LM head must be plain apart from the transforms `LogitTransform` knows (soft-capping, cohere's
logit_scale, granite's logits_scaling); a head that does anything else (hyperclovax, minicpm3) is not known here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

# How an RMSNorm applies its weight to y = x / rms(x) (y float32):
#   "llama": w * y.to(dtype); "weight_first": (w * y).to(dtype) (olmo2); "one_plus": (y * (1 + w)).to(dtype) (gemma)
NormKind = Literal["llama", "weight_first", "one_plus"]


@dataclass(frozen=True, slots=True)
class Family:
    """How one model family's decoder layer departs from Llama's (the defaults are Llama)."""

    norm: NormKind = "llama"
    pre_norms: bool = True  # RMSNorm before attention and before the MLP
    post_norms: bool = False  # RMSNorm of the attention / MLP output before its residual add
    qk_norm: Literal["head", "whole"] | None = None  # per head (qwen3, gemma3) or over all heads (olmo2)
    embed_scale: bool = False  # embeddings times sqrt(hidden), cast to their dtype (gemma)
    attn_softcap: bool = False  # tanh soft-capping of attention scores (gemma2)
    fused: bool = False  # qkv_proj and gate_up_proj (phi3)
    rope_per_layer_type: bool = False  # a RoPE table per layer type (gemma3: another base on sliding layers)
    activation_key: str = "hidden_act"  # the config field naming the MLP activation


FAMILIES: dict[str, Family] = {
    "llama": Family(),
    "qwen2": Family(),
    "mistral": Family(),
    "qwen3": Family(qk_norm="head"),
    "gemma2": Family(
        norm="one_plus",
        post_norms=True,
        embed_scale=True,
        attn_softcap=True,
        activation_key="hidden_activation",
    ),
    "gemma3_text": Family(
        norm="one_plus",
        post_norms=True,
        qk_norm="head",
        embed_scale=True,
        rope_per_layer_type=True,
        activation_key="hidden_activation",
    ),
    "phi3": Family(fused=True),
    "olmo2": Family(norm="weight_first", pre_norms=False, post_norms=True, qk_norm="whole"),
}


def layer_windows(config: Any) -> list[int | None]:
    """Each layer's sliding window (None: full attention), as transformers applies it: a layer listed as
    "sliding_attention" in `layer_types` (qwen2/3, gemma2/3) attends to itself and the `sliding_window` - 1 tokens
    before it; without `layer_types`, a set `sliding_window` covers every layer (mistral, phi3)."""
    n = config.num_hidden_layers
    window = getattr(config, "sliding_window", None)
    types = getattr(config, "layer_types", None)
    if types is not None:
        return [window if kind == "sliding_attention" else None for kind in types[:n]]
    return [window] * n


def other_layer_types(config: Any) -> set[str]:
    """Layer types other than full and sliding attention (chunked, linear, ...): nothing in rlvr masks them."""
    return set(getattr(config, "layer_types", None) or []) - {"full_attention", "sliding_attention"}


@dataclass(frozen=True, slots=True)
class LogitTransform:
    """What a model's forward does to `lm_head(hidden)` before returning logits, in this order, in the head's dtype:
    times `multiplier` (cohere's logit_scale), divided by `divisor` (granite's logits_scaling), then
    cap * tanh(logits / cap) (gemma2/3's final_logit_softcapping)."""

    multiplier: float | None = None
    divisor: float | None = None
    softcap: float | None = None

    def __call__(self, logits: Any) -> Any:
        import torch

        if self.multiplier is not None:
            logits = logits * self.multiplier
        if self.divisor is not None:
            logits = logits / self.divisor
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @property
    def identity(self) -> bool:
        return self.multiplier is None and self.divisor is None and self.softcap is None


def logit_transform(config: Any) -> LogitTransform:
    """The head-side transform of `config`'s model (identity for Llama-like heads)."""
    model_type = getattr(config, "model_type", "")
    multiplier = getattr(config, "logit_scale", None) if model_type.startswith("cohere") else None
    divisor = getattr(config, "logits_scaling", None) if model_type.startswith("granite") else None
    return LogitTransform(
        multiplier=multiplier, divisor=divisor, softcap=getattr(config, "final_logit_softcapping", None)
    )
