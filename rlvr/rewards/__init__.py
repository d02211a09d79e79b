"""Verifiers and reward functions. Pure Python: nothing here imports torch."""

from rlvr.rewards.math import Verdict, verify

__all__ = ["Verdict", "verify"]
