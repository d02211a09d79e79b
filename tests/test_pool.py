"""The grading pool: order kept, hard time limit, crash recovery, usable from threads."""

from __future__ import annotations

import multiprocessing
import re
import threading
import time
from collections.abc import Iterator

import pytest
from graders_for_tests import echo

from rlvr.rewards.math import Verdict
from rlvr.rewards.pool import grade_many, verifier_pool


def test_results_keep_input_order_across_workers() -> None:
    pairs = [(str(i), str(i if i % 3 else -1)) for i in range(500)]
    with verifier_pool(2, fn=echo) as pool:
        verdicts = pool.grade(pairs)
    assert [v.extracted for v in verdicts] == [str(i) for i in range(500)]
    assert [v.correct for v in verdicts] == [i % 3 != 0 for i in range(500)]


def test_a_hanging_call_is_killed_and_the_rest_still_graded() -> None:
    pairs = [("1", "1"), ("HANG", "x"), ("2", "2"), ("3", "4")]
    start = time.monotonic()
    with verifier_pool(1, fn=echo, timeout_s=0.3, slack_s=0.2) as pool:
        verdicts = pool.grade(pairs)
        assert pool.killed == 1
    assert time.monotonic() - start < 5
    assert [v.correct for v in verdicts] == [True, False, True, False]
    assert verdicts[1].reason.startswith("timeout")


def test_a_crashing_worker_is_replaced() -> None:
    with verifier_pool(1, fn=echo, timeout_s=0.3) as pool:
        verdicts = pool.grade([("CRASH", "x"), ("5", "5")])
    assert verdicts[0].reason.startswith("crash") and not verdicts[0].correct
    assert verdicts[1].correct


def test_pool_works_from_a_thread() -> None:
    out: list[bool] = []
    thread = threading.Thread(
        target=lambda: out.extend(v.correct for v in grade_many([("\\boxed{2}", "2")], workers=1))
    )
    thread.start()
    thread.join(timeout=30)
    assert out == [True]


def test_a_hang_in_a_chunk_costs_only_that_task_and_is_killed_on_time() -> None:
    """With two workers and chunks of 8, the tasks queued behind the hung one are re-sent and graded right."""
    pairs = [("HANG" if i == 5 else str(i), str(i)) for i in range(40)]
    with verifier_pool(2, fn=echo, timeout_s=0.2, slack_s=0.2, chunk=8) as pool:
        verdicts = pool.grade(pairs)
        assert pool.killed == 1 and pool.crashed == 0
    assert [v.correct for v in verdicts] == [i != 5 for i in range(40)]
    assert [v.extracted for v in verdicts if v.correct] == [str(i) for i in range(40) if i != 5]
    waited = re.search(r"killed after ([\d.]+) s", verdicts[5].reason)
    assert (
        waited is not None and 0.4 <= float(waited.group(1)) < 1.0
    )  # timeout_s + slack_s, plus the parent's reaction time


def test_an_exception_in_the_grader_is_an_error_verdict() -> None:
    with verifier_pool(1, fn=echo) as pool:
        verdicts = pool.grade([("RAISE", "x"), ("7", "7")])
        assert pool.crashed == 0
    assert verdicts[0] == Verdict(False, None, "error: ZeroDivisionError: as asked")
    assert verdicts[1].correct


def test_in_process_grading_with_zero_workers() -> None:
    seen: list[int] = []
    verdicts = list(
        grade_many([("1", "1"), ("RAISE", "1"), ("2", "3")], workers=0, fn=echo, progress=seen.append)
    )
    assert [v.correct for v in verdicts] == [True, False, False] and sum(seen) == 3
    assert verdicts[1].reason.startswith("error: ZeroDivisionError")


def test_a_pool_serves_several_batches_and_streams_lazily() -> None:
    read: list[int] = []

    def source() -> Iterator[tuple[str, str]]:
        for i in range(10_000):
            read.append(i)
            yield str(i), str(i)

    with verifier_pool(2, fn=echo, chunk=4) as pool:
        assert [v.correct for v in pool.grade([("a", "a"), ("b", "c")])] == [True, False]
        stream = pool.imap(source())
        assert next(stream).extracted == "0"
        assert len(read) <= 4 * 2 * 4 + 2 * 4  # bounded read-ahead, not the whole input
        stream.close()  # dropped mid-stream: workers on its tasks are stopped, the pool still works
        assert [v.extracted for v in pool.grade([("x", "x")])] == ["x"]
    assert not [p for p in multiprocessing.active_children() if p.name == "rlvr-grader"]  # all reaped


def test_an_error_in_the_input_reaches_the_caller_and_leaves_no_workers() -> None:
    def source() -> Iterator[tuple[str, str]]:
        yield "1", "1"
        raise ValueError("bad record")

    with pytest.raises(ValueError, match="bad record"):
        list(grade_many(source(), workers=1, fn=echo))
    assert not [p for p in multiprocessing.active_children() if p.name == "rlvr-grader"]
