"""The grading pool: order kept, hard time limit, crash recovery, usable from threads."""

from __future__ import annotations

import threading
import time

from graders_for_tests import echo

from rlvr.rewards.pool import VerifierPool, grade_many


def test_results_keep_input_order_across_workers() -> None:
    pairs = [(str(i), str(i if i % 3 else -1)) for i in range(500)]
    with VerifierPool(2, fn=echo) as pool:
        verdicts = pool.grade(pairs)
    assert [v.extracted for v in verdicts] == [str(i) for i in range(500)]
    assert [v.correct for v in verdicts] == [i % 3 != 0 for i in range(500)]


def test_a_hanging_call_is_killed_and_the_rest_still_graded() -> None:
    pairs = [("1", "1"), ("HANG", "x"), ("2", "2"), ("3", "4")]
    start = time.monotonic()
    with VerifierPool(1, fn=echo, timeout_s=0.3, slack_s=0.2) as pool:
        verdicts = pool.grade(pairs)
        assert pool.killed == 1
    assert time.monotonic() - start < 5
    assert [v.correct for v in verdicts] == [True, False, True, False]
    assert verdicts[1].reason.startswith("timeout")


def test_a_crashing_worker_is_replaced() -> None:
    with VerifierPool(1, fn=echo, timeout_s=0.3) as pool:
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
