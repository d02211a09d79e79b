"""Tiny random-init models of the real architectures, for tests and the CPU demo.

Same classes as the real checkpoints (`Qwen2ForCausalLM`, `Gemma3ForCausalLM`, ...), each built from its own
transformers config class, only small: every code path that runs on a 1.5B model runs here in milliseconds.
Beyond qwen2 and llama, each family's tiny config turns on what sets it apart (`FEATURES`), at sizes where it
matters: a sliding window shorter than the test sequences, soft-caps near the tiny logits' scale, q/k norms, and
norm weights drawn around their init so (1 + w) and q/k norms are not the identity.
"""

from __future__ import annotations

from typing import Any

ARCHS = ("qwen2", "llama", "qwen3", "mistral", "gemma2", "gemma3_text", "phi3", "olmo2")
WINDOW = 8  # sliding window of the tiny windowed families: shorter than the tests' prompts and sequences
SLIDING, FULL = "sliding_attention", "full_attention"

# What each family's tiny config sets beyond the shared sizes (plus the layer count).
FEATURES: dict[str, dict[str, Any]] = {
    "qwen2": {},
    "llama": {},
    "qwen3": {"head_dim": 16},  # q/k RMSNorm per head comes with the class
    "mistral": {"head_dim": 16, "sliding_window": WINDOW},  # every layer sliding
    "gemma2": {
        "num_layers": 4,  # sliding and global alternating (Gemma2Config's default layer_types)
        "head_dim": 16,
        "query_pre_attn_scalar": 24,  # attention scale 24^-0.5, not hd^-0.5
        "sliding_window": WINDOW,
        "initializer_range": 0.1,  # sharper attention, so that its soft-cap matters (logits ~0.6)
        "attn_logit_softcapping": 1.0,  # caps near the scores' and logits' scale: they bend them
        "final_logit_softcapping": 1.0,
    },
    "gemma3_text": {
        "num_layers": 4,
        "head_dim": 16,
        "query_pre_attn_scalar": 24,
        "sliding_window": WINDOW,
        "layer_types": [SLIDING, FULL, SLIDING, FULL],
        "rope_parameters": {  # sliding layers: their own base; global ones: linear scaling (as Gemma 3 4B+)
            SLIDING: {"rope_type": "default", "rope_theta": 10_000.0},
            FULL: {"rope_type": "linear", "rope_theta": 1_000_000.0, "factor": 8.0},
        },
    },
    "phi3": {
        "rope_parameters": {"rope_type": "default", "rope_theta": 10_000.0, "partial_rotary_factor": 0.5}
    },
    "olmo2": {},
}


def _config_class(arch: str) -> Any:
    import transformers

    names = {
        "qwen2": "Qwen2Config",
        "llama": "LlamaConfig",
        "qwen3": "Qwen3Config",
        "mistral": "MistralConfig",
        "gemma2": "Gemma2Config",
        "gemma3_text": "Gemma3TextConfig",
        "phi3": "Phi3Config",
        "olmo2": "Olmo2Config",
    }
    return getattr(transformers, names[arch])


def tiny_config(
    arch: str = "qwen2",
    *,
    vocab_size: int = 105,
    hidden_size: int = 64,
    num_layers: int | None = None,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 1024,
    tie_word_embeddings: bool = False,
    pad_token_id: int = 0,
    eos_token_id: int = 1,
    **overrides: Any,
) -> Any:
    """A small config of a real architecture (grouped-query attention kept: 4 query heads, 2 KV heads); 2 layers,
    or the family's own count. `overrides`: any other config field, over the family's `FEATURES`."""
    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; tiny models exist for {', '.join(ARCHS)}")
    features = dict(FEATURES[arch])
    family_layers = features.pop("num_layers", 2)
    return _config_class(arch)(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers or family_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
        **{**features, **overrides},
    )


def build_tiny_model(arch: str = "qwen2", *, seed: int = 0, **config: Any) -> Any:
    """A random-init causal LM of `arch` in float32 on CPU, deterministic in `seed`. Families beyond qwen2 and
    llama get their RMSNorm weights moved off their init (w += N(0, 0.1²)), so every norm's weight matters;
    qwen2 and llama keep the plain init that other tests' expectations rest on."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **config), dtype=torch.float32)
    if arch not in ("qwen2", "llama"):
        with torch.no_grad():
            for name, param in model.named_parameters():
                if "norm" in name:
                    param.add_(torch.randn_like(param) * 0.1)
    return model.eval()


def build_tiny_pair(arch: str = "qwen2", *, seed: int = 0, **config: Any) -> tuple[Any, Any]:
    """A tiny model and the tiny character tokenizer, sized for each other. Generation stops at <|endoftext|> or
    at the chat template's end of turn, <|im_end|> (as Qwen2.5-Instruct's generation config does)."""
    from rlvr.models.tokenizer import build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer()
    model = build_tiny_model(
        arch,
        seed=seed,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **config,
    )
    model.generation_config.eos_token_id = [
        tokenizer.eos_token_id,
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
    ]
    return model, tokenizer
