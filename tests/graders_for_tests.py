"""Module-level graders for the pool tests (worker processes import them by name)."""

from __future__ import annotations

import os
import time

from rlvr.rewards.functions import accuracy
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


TRAPS = {"7": "hang", "8": "exit", "9": "hog"}  # gold -> what the trap reward does on it


def trap_reward(response: str, gold: str, *, final_form: bool = False) -> float:
    """A training reward (rlvr.rewards.score) that hangs forever, kills its process or allocates 10 GB when the
    gold answer is 7, 8 or 9; otherwise accuracy."""
    trap = TRAPS.get(gold)
    if trap == "hang":
        time.sleep(3600)
    elif trap == "exit":
        os._exit(3)
    elif trap == "hog":
        hog = b"x" * (10 * 2**30)
        return float(len(hog))
    return accuracy(response, gold, final_form=final_form)


def trap_free_reward(response: str, gold: str, *, final_form: bool = False) -> float:
    """What `trap_reward` scores once the pool has scored its traps 0."""
    return 0.0 if gold in TRAPS else accuracy(response, gold, final_form=final_form)


def raising_reward(response: str, gold: str, *, final_form: bool = False) -> float:
    """Raises on the gold answer 7; otherwise accuracy."""
    if gold == "7":
        raise KeyError("no such thing")
    return accuracy(response, gold, final_form=final_form)


def spread_reward(response: str, gold: str, *, final_form: bool = False) -> float:
    """A reward in {0, 0.1, ..., 1} fixed by the response's characters: a random model's group is (almost surely)
    mixed, whatever it writes."""
    return sum(map(ord, response)) % 11 / 10


def flat_on_odd_reward(response: str, gold: str, *, final_form: bool = False) -> float:
    """1.0 for every response to an odd gold answer (an all-equal group), `spread_reward` on the others."""
    return 1.0 if int(gold) % 2 else spread_reward(response, gold)


def zero_reward(response: str, gold: str, *, final_form: bool = False) -> float:
    return 0.0
