"""Module-level graders for the pool tests (worker processes import them by name)."""

from __future__ import annotations

import os
import time

from rlvr.rewards.math import Verdict


def echo(response: str, gold: str, *, timeout_s: float = 1.0) -> Verdict:
    """Correct when response == gold; "HANG" blocks forever, "CRASH" kills the process, "RAISE" raises."""
    if response == "HANG":
        time.sleep(3600)
    if response == "RAISE":
        raise ZeroDivisionError("as asked")
    if response == "CRASH":
        os._exit(1)
    return Verdict(response == gold, response, "echo")
