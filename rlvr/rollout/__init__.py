"""Rollout: sample completions from a policy. `RolloutEngine` is the protocol; backends: hf (reference), fast, vllm."""

from typing import Any

from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

__all__ = ["Rollout", "RolloutEngine", "SamplingParams", "local_engine"]


def local_engine(name: str, model: Any, tokenizer: Any, **fast_settings: Any) -> RolloutEngine:
    """The in-process engine `name` ("fast" or "hf") over `model` itself: it sees every in-place weight update."""
    if name == "hf":
        from rlvr.rollout.hf import HFEngine

        return HFEngine(model, tokenizer)
    if name != "fast":
        raise ValueError(f"no local engine {name!r}: fast or hf (vllm runs its own copy of the weights)")
    from rlvr.rollout.fast import FastEngine

    return FastEngine(model, tokenizer, **fast_settings)
