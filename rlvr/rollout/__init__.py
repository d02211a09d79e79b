"""Rollout: sample completions from a policy. `RolloutEngine` is the protocol; backends: hf (reference), fast, vllm."""

import logging
from typing import Any

from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

__all__ = ["Rollout", "RolloutEngine", "SamplingParams", "local_engine"]

log = logging.getLogger(__name__)
_noticed: set[str] = set()  # fallback notices already given in this process


def local_engine(name: str, model: Any, tokenizer: Any, **fast_settings: Any) -> RolloutEngine:
    """The in-process engine `name` ("fast" or "hf") over `model` itself: it sees every in-place weight update.
    "fast" over a model its decoder cannot run (another family, a length-dependent RoPE) is the hf engine, with a
    one-line notice, given once per reason."""
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
