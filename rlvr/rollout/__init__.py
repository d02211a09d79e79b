"""Rollout: sample completions from a policy. `RolloutEngine` is the protocol; backends: hf (reference), fast, vllm."""

import logging
from pathlib import Path
from typing import Any

from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

__all__ = ["Rollout", "RolloutEngine", "SamplingParams", "local_engine", "run_engine"]

log = logging.getLogger(__name__)
_noticed: set[str] = set()  # fallback notices already given in this process


def local_engine(
    name: str, model: Any, tokenizer: Any, dtype: str = "auto", **fast_settings: Any
) -> RolloutEngine:
    """The in-process engine `name` ("fast" or "hf") over `model` itself: it sees every in-place weight update.
    "fast" over a model its decoder cannot run (another family, a length-dependent RoPE) is the hf engine, with a
    one-line notice, given once per reason. dtype: "auto" samples in the model's own dtype; "bfloat16" /
    "float32" from a copy in that dtype, refreshed from `model` before every `generate` (`rlvr.rollout.cast`)."""
    import torch

    if dtype not in ("auto", "float32", "bfloat16"):  # bf16-if-native is resolved by the trainer
        raise ValueError(f"rollout dtype must be auto, float32 or bfloat16, not {dtype!r}")
    if dtype != "auto" and getattr(torch, dtype) != next(model.parameters()).dtype:
        from rlvr.rollout.cast import CastEngine

        return CastEngine(
            model, getattr(torch, dtype), lambda m: local_engine(name, m, tokenizer, **fast_settings)
        )
    if name not in ("fast", "hf"):
        raise ValueError(f"no local engine {name!r}: fast or hf (vllm runs its own copy of the weights)")
    if name == "fast":
        from rlvr.rollout.layers import unsupported

        reason = unsupported(model)
        if reason is None:
            from rlvr.rollout.fast import FastEngine

            return FastEngine(model, tokenizer, **fast_settings)
        if reason not in _noticed:
            _noticed.add(reason)
            log.warning("engine fast: %s; sampling with the hf engine (model.generate) instead", reason)
    from rlvr.rollout.hf import HFEngine

    return HFEngine(model, tokenizer)


def run_engine(name: str, model: Any, tokenizer: Any, path: str | Path, dtype: str = "auto") -> RolloutEngine:
    """A training run's engine: fast and hf read the live module (or its `dtype` copy); vllm loads the checkpoint
    at `path` and has the weights pushed to it after every update."""
    if name != "vllm":
        return local_engine(name, model, tokenizer, dtype=dtype)
    if str(path) == "tiny":
        raise ValueError("engine vllm loads a checkpoint directory: set model= to one (not tiny)")
    from rlvr.rollout.vllm import VLLMEngine

    return VLLMEngine(path)
