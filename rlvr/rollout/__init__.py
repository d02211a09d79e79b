"""Rollout: sample completions from a policy. `RolloutEngine` is the protocol; backends: hf (reference), fast, vllm."""

from typing import Any

from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

__all__ = ["Rollout", "RolloutEngine", "SamplingParams", "local_engine"]


def local_engine(
    name: str, model: Any, tokenizer: Any, dtype: str = "auto", **fast_settings: Any
) -> RolloutEngine:
    """The in-process engine `name` ("fast" or "hf") over `model` itself: it sees every in-place weight update.
    dtype: "auto" samples in the model's own dtype; "bfloat16" / "float32" from a copy in that dtype, refreshed
    from `model` before every `generate` (`rlvr.rollout.cast`)."""
    import torch

    own = next(model.parameters()).dtype
    if dtype not in ("auto", "float32", "bfloat16"):
        raise ValueError(f"rollout dtype must be auto, float32 or bfloat16, not {dtype!r}")
    if dtype != "auto" and getattr(torch, dtype) != own:
        from rlvr.rollout.cast import CastEngine

        return CastEngine(
            model, getattr(torch, dtype), lambda m: local_engine(name, m, tokenizer, **fast_settings)
        )
    if name == "hf":
        from rlvr.rollout.hf import HFEngine

        return HFEngine(model, tokenizer)
    if name != "fast":
        raise ValueError(f"no local engine {name!r}: fast or hf (vllm runs its own copy of the weights)")
    from rlvr.rollout.fast import FastEngine

    return FastEngine(model, tokenizer, **fast_settings)
