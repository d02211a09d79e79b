"""The model a training stage starts from: any model spec (`rlvr.models.registry.resolve`), or a random-init tiny
model (`model: tiny`), with its tokenizer, in the parameter dtype the stage keeps (`rlvr.train.precision`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch


@dataclass
class TinyModel:
    """A random-init model of a real architecture, with rlvr's character tokenizer (model: tiny)."""

    arch: str = "qwen2"  # a family of rlvr.models.tiny.ARCHS: qwen2, llama, qwen3, mistral, gemma2, ...
    hidden_size: int = 64
    num_layers: int | None = (
        None  # None: the family's own (2; gemma2/gemma3 4, so local and global layers alternate)
    )
    num_heads: int = 4
    num_kv_heads: int = 2
    intermediate_size: int = 128
    seed: int = 0  # initialisation


class ModelConfig(Protocol):
    """What `build_model` reads from a stage's config."""

    @property
    def model(self) -> str: ...
    @property
    def tiny(self) -> TinyModel: ...
    @property
    def gradient_checkpointing(self) -> bool: ...


def build_model(
    config: ModelConfig, path: str | Path | None, device: torch.device, dtype: torch.dtype
) -> tuple[Any, Any]:
    """The model (train mode, parameters in `dtype` on `device`) and its tokenizer: from `path` (a checkpoint),
    config.model, or a tiny model."""
    from rlvr.models.checkpoint import enable_gradient_checkpointing, load_model, load_tokenizer

    source = path or config.model
    if source == "tiny":
        from rlvr.models.tiny import build_tiny_pair

        t = config.tiny
        model, tokenizer = build_tiny_pair(
            t.arch,
            seed=t.seed,
            hidden_size=t.hidden_size,
            num_layers=t.num_layers,
            num_heads=t.num_heads,
            num_kv_heads=t.num_kv_heads,
            intermediate_size=t.intermediate_size,
        )
        cast_parameters(model.to(device), dtype)
        if config.gradient_checkpointing:
            enable_gradient_checkpointing(model)
    else:
        model = load_model(
            source,
            dtype=str(dtype).removeprefix("torch."),
            device=str(device),
            gradient_checkpointing=config.gradient_checkpointing,
        )
        tokenizer = load_tokenizer(source)
    model.train()
    return model, tokenizer


def cast_parameters(model: Any, dtype: torch.dtype) -> Any:
    """`model` with its parameters in `dtype` and its buffers as they were: `module.to(dtype)` would also round
    RoPE's fp32 inverse frequencies (a bf16 `inv_freq` turns positions ~250 tokens in by a third of a radian), which
    `from_pretrained(dtype=...)` keeps in fp32."""
    for p in model.parameters():
        p.data = p.data.to(dtype)
    return model
