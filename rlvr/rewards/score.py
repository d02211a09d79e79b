"""A training response's score: its reward and the verifier's verdict, computed where a hang, a crash or a runaway
allocation cannot take the run down with it.

The trainer scores through a `rlvr.rewards.pool.WorkerPool` of `score_response`: a call past the time limit has
its worker killed, a worker that dies is replaced, a worker past its memory limit raises MemoryError; each such
response scores `Score(0.0, False, reason)` and the step's metrics count it by `failure_kind`
(`reward/timeouts`, `reward/crashes`, `reward/memory`, `reward/errors`). Results keep their order.

A reward is named by the recipe: a name in `REWARDS`, or `package.module:function` for one of your own with the
same signature, `fn(response, gold, *, final_form=False) -> float` (importable by the worker processes too).
"""

from __future__ import annotations

import importlib
import math
from functools import cache, partial
from typing import NamedTuple

from rlvr.rewards.functions import REWARDS, Reward
from rlvr.rewards.math import DEFAULT_TIMEOUT_S, verify
from rlvr.rewards.pool import WorkerPool

FAILURE_KINDS = ("timeouts", "crashes", "memory", "errors")  # the metrics' names: reward/<kind>


class Score(NamedTuple):
    reward: float
    correct: bool  # the verifier's verdict (accuracy metrics, difficulty filter), whatever the reward is
    failure: str | None = None  # why no reward could be computed ("timeout: ...", "crash: ...", "error: ...")


def failed_score(reason: str) -> Score:
    """A response whose reward call was killed, crashed or raised: reward 0, not correct."""
    return Score(0.0, False, reason)


def failure_kind(reason: str) -> str:
    """Which of FAILURE_KINDS a failure reason counts under."""
    if reason.startswith("timeout"):
        return "timeouts"
    if reason.startswith("crash"):
        return "crashes"
    return "memory" if reason.startswith("error: MemoryError") else "errors"


@cache
def reward_function(spec: str) -> Reward:
    """The reward a recipe names: a key of REWARDS or `package.module:function`. Unknown: a one-line ValueError."""
    if spec in REWARDS:
        return REWARDS[spec]
    module, colon, name = spec.partition(":")
    if not colon:
        raise ValueError(f"reward {spec!r} is not one of {', '.join(REWARDS)}, nor a package.module:function")
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        raise ValueError(f"reward {spec!r}: cannot import it ({error})") from None
    if not callable(fn):
        raise ValueError(f"reward {spec!r} is not a function")
    return fn


def score_response(
    response: str, gold: str, *, timeout_s: float, reward: str, final_form: bool = False
) -> Score:
    """The reward `reward` gives `response` and whether the verifier finds it correct (module level: it runs in
    worker processes). timeout_s: the pool's limit for the whole call; the verifier's own cooperative limit is
    the smaller of it and verify's default, as the built-in rewards' calls have."""
    value = float(reward_function(reward)(response, gold, final_form=final_form))
    verdict = verify(response, gold, final_form=final_form, timeout_s=min(timeout_s, DEFAULT_TIMEOUT_S))
    if verdict.reason.startswith(
        "error:"
    ):  # verify caught it (a MemoryError past the limit): counted, not hidden
        return failed_score(verdict.reason)
    if not math.isfinite(value):
        return Score(0.0, verdict.correct, f"error: the reward is {value}")
    return Score(value, verdict.correct)


def reward_pool(
    workers: int, reward: str, *, final_form: bool, timeout_s: float, memory_mb: int | None
) -> WorkerPool[Score]:
    """The trainer's scorer: `workers` processes (0: in the trainer's thread, without the kill or the memory
    limit) running `score_response` for `reward`, killed past timeout_s + the pool's slack."""
    reward_function(reward)  # an unknown or unimportable reward fails here, before any sampling
    fn = partial(score_response, reward=reward, final_form=final_form)
    return WorkerPool(workers, fn=fn, on_failure=failed_score, timeout_s=timeout_s, memory_mb=memory_mb)
