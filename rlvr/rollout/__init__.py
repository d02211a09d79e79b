"""Rollout: sample completions from a policy. `RolloutEngine` is the protocol; backends: hf (reference), fast, vllm."""

from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

__all__ = ["Rollout", "RolloutEngine", "SamplingParams"]
