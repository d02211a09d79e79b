"""Tiny random-init models of the real architectures (Qwen2, Llama), for tests and the CPU demo.

Same classes as the real checkpoints (`Qwen2ForCausalLM`, `LlamaForCausalLM`), only small: every code path that
runs on a 1.5B model runs here in milliseconds.
"""

from __future__ import annotations

from typing import Any

ARCHS = ("qwen2", "llama")


def tiny_config(
    arch: str = "qwen2",
    *,
    vocab_size: int = 105,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    intermediate_size: int = 128,
    max_position_embeddings: int = 1024,
    tie_word_embeddings: bool = False,
    pad_token_id: int = 0,
    eos_token_id: int = 1,
) -> Any:
    """A small config of a real architecture (grouped-query attention kept: 4 query heads, 2 KV heads)."""
    from transformers import LlamaConfig, Qwen2Config

    if arch not in ARCHS:
        raise ValueError(f"unknown architecture {arch!r}; tiny models exist for {', '.join(ARCHS)}")
    cls = Qwen2Config if arch == "qwen2" else LlamaConfig
    return cls(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings,
        tie_word_embeddings=tie_word_embeddings,
        pad_token_id=pad_token_id,
        eos_token_id=eos_token_id,
        bos_token_id=None,
    )


def build_tiny_model(arch: str = "qwen2", *, seed: int = 0, **config: Any) -> Any:
    """A random-init causal LM of `arch` in float32 on CPU, deterministic in `seed`."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(arch, **config), dtype=torch.float32)
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
