"""Grade or score many (response, gold) pairs in worker processes, with a hard time limit on every call.

`verify` keeps a cooperative deadline, but one pathological input can still hold a worker inside a single long C
call (a huge integer operation, a regular expression) that no deadline check interrupts. Only killing the process
bounds that. So the parent times each worker's current task; a worker still on one task after
`timeout_s + slack_s` seconds is killed and replaced, its task gets `on_failure("timeout: ...")` (for `verify`:
`Verdict(False, None, "timeout: ...")`) and the rest of its chunk goes to another worker. A worker that dies (a
crash in C, the OOM killer) costs only the task it was on: `on_failure("crash: ...")`. Results come back in input order whatever happens. A worker may
also be given a memory limit (`memory_mb`: its data segment, so an allocation past it raises MemoryError there,
an "error: MemoryError" result, instead of swapping the machine or waking the OOM killer).

`WorkerPool` runs any picklable `fn(response, gold, *, timeout_s) -> R` and makes the result of a call that failed
(killed, crashed, raised) with `on_failure(reason)`; `verifier_pool` makes the one that runs `verify` (the `rlvr verify`
and eval graders), the trainer's rewards run in one of `rlvr.rewards.score`.

Why this shape:
- Processes come from the "spawn" start method: safe to start from any thread (a fork copies locks other threads
  hold) and the same on Linux, macOS and Windows. A worker starts in ~0.1 s; we keep them for the pool's life.
- Tasks go out in chunks (one message per `chunk` tasks, for throughput); results come back one message per task,
  so the parent always knows which task a worker is on and when it began: the moment the previous result arrived.
  That moment is never earlier than the real start, so a slow parent can only kill late, never wrongly.
- A chunk is sent only to a worker with nothing in hand, which is then blocked reading it: the parent never blocks
  on a worker that is busy or hung.
- Input is read lazily and results are held only while an earlier one is still out, so memory stays bounded
  (about `4 * workers * chunk` pairs) however long the input is.

What it does not do: retry a task that crashed or timed out (the same input would do the same again), or share
one pool between threads at once (one `grade` stream at a time; use a pool per thread).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import signal
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from typing import Any, Generic, Protocol, TypeVar

from rlvr.rewards.math import Verdict, verify

DEFAULT_TIMEOUT_S = 1.0  # the cooperative limit handed to `fn` (verify's own default)
SLACK_S = 0.5  # seconds past timeout_s before a worker is killed: verify returns within ms of its deadline
CHUNK = 64  # tasks per message to a worker
START_LIMIT_S = (
    60.0  # a worker not ready after this long is stuck (a spawn takes ~0.1 s, more on a busy host)
)
START_FAILURES = 3  # workers that die before they are ready, in a row, before we give up

Task = tuple[int, str, str]  # (input index, response, gold)
R = TypeVar("R")


class GradeFn(Protocol):
    """What a `verifier_pool` worker calls: `verify` or any picklable function with its signature (a partial)."""

    def __call__(self, response: str, gold: str, *, timeout_s: float) -> Verdict: ...


def failed_verdict(reason: str) -> Verdict:
    """A call that was killed, crashed or raised: wrong, nothing extracted, the reason."""
    return Verdict(False, None, reason)


class WorkerPool(Generic[R]):
    """Worker processes that run `fn` over (response, gold) pairs; reuse one across many `grade` calls (a
    training run's steps).

    workers: processes to run (None: one per CPU this process may use); 0 runs fn in the calling thread with
    only its cooperative limit (no kill, no memory limit).
    timeout_s: the limit handed to fn; a call still running at timeout_s + slack_s has its worker killed.
    fn: module-level (picklable) function of (response, gold, *, timeout_s); tests pass one that hangs.
    on_failure: module-level function making a result from the reason a call failed ("timeout: ...",
    "crash: ...", "error: <exception>: ...").
    memory_mb: each worker's data-segment limit (None: none).
    `killed` and `crashed` count the workers lost to the time limit and to crashes.
    """

    def __init__(
        self,
        workers: int | None,
        *,
        fn: Callable[..., R],
        on_failure: Callable[[str], R],
        timeout_s: float = DEFAULT_TIMEOUT_S,
        slack_s: float = SLACK_S,
        chunk: int = CHUNK,
        memory_mb: int | None = None,
    ):
        if workers is None:
            workers = (
                len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
            )
        if workers < 0 or chunk < 1 or timeout_s <= 0 or slack_s < 0 or (memory_mb or 1) < 1:
            raise ValueError(f"bad pool settings: {workers=} {chunk=} {timeout_s=} {slack_s=} {memory_mb=}")
        self.size = workers
        self.timeout_s = timeout_s
        self.limit_s = timeout_s + slack_s
        self.chunk = chunk
        self.fn = fn
        self.on_failure = on_failure
        self.memory_mb = memory_mb
        self._context = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._start_failures = 0
        self.killed = 0
        self.crashed = 0
        self._streaming = False
        self._closed = False
        self._top_up()

    def __enter__(self) -> WorkerPool[R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def grade(
        self, pairs: Iterable[tuple[str, str]], *, progress: Callable[[int], object] | None = None
    ) -> list[R]:
        """All results for `pairs`, in input order (a batch: a training step's responses)."""
        return list(self.imap(pairs, progress=progress))

    def imap(
        self, pairs: Iterable[tuple[str, str]], *, progress: Callable[[int], object] | None = None
    ) -> Iterator[R]:
        """Results for `pairs`, one each, in input order, as they become available.

        progress: called with the number of newly finished pairs (in any order), e.g. a tqdm bar's `update`.
        Dropping the iterator early kills the workers still on its tasks (they are replaced on the next call).
        """
        if self._closed:
            raise RuntimeError("the grading pool is closed")
        if self.size == 0:
            return self._grade_here(pairs, progress)
        return self._stream(pairs, progress)

    def close(self) -> None:
        """Stop every worker: idle ones are asked to exit, busy ones killed; all are reaped (no zombies)."""
        self._closed = True
        for worker in self._workers:
            worker.stop(kill=bool(worker.pending) or not worker.ready)
        self._workers = []

    def _begin(self) -> None:
        """Called when a stream starts (not when it is created, so one never iterated holds nothing)."""
        if self._streaming:
            raise RuntimeError("this grading pool is already streaming; use one pool per concurrent stream")
        self._streaming = True

    def _grade_here(
        self, pairs: Iterable[tuple[str, str]], progress: Callable[[int], object] | None
    ) -> Iterator[R]:
        self._begin()
        try:
            for response, gold in pairs:
                yield _grade_one(self.fn, self.on_failure, response, gold, self.timeout_s)
                if progress is not None:
                    progress(1)
        finally:
            self._streaming = False

    def _stream(
        self, pairs: Iterable[tuple[str, str]], progress: Callable[[int], object] | None
    ) -> Iterator[R]:
        source = enumerate(pairs)
        queue: deque[Task] = deque()  # read and not yet sent, or handed back by a killed worker
        done: dict[int, R] = {}  # finished, waiting for an earlier one
        read = emitted = 0
        exhausted = False
        window = 4 * self.size * self.chunk  # read no further ahead than this past the next result to yield
        self._begin()
        try:
            self._top_up()
            while True:
                while emitted in done:
                    yield done.pop(emitted)
                    emitted += 1
                while not exhausted and len(queue) < self.size * self.chunk and read - emitted < window:
                    try:
                        index, (response, gold) = next(source)
                    except StopIteration:
                        exhausted = True
                        break
                    queue.append((index, response, gold))
                    read += 1
                if exhausted and emitted == read:
                    return
                self._dispatch(queue)
                finished = self._collect(queue, done)
                finished += self._enforce_limits(queue, done)
                if finished and progress is not None:
                    progress(finished)
        finally:
            self._streaming = False
            abandoned = [w for w in self._workers if w.pending]  # stopped mid-stream: nobody will read them
            for worker in abandoned:
                worker.stop(kill=True)
                self._workers.remove(worker)

    def _top_up(self) -> None:
        while len(self._workers) < self.size:
            self._workers.append(self._new_worker())

    def _new_worker(self) -> _Worker:
        return _Worker(self._context, (self.fn, self.on_failure, self.timeout_s, self.memory_mb))

    def _dispatch(self, queue: deque[Task]) -> None:
        """Send a chunk to each ready worker with nothing in hand; split evenly when the queue runs low."""
        for worker in self._workers:
            if not queue:
                return
            if worker.ready and not worker.pending:
                size = min(self.chunk, math.ceil(len(queue) / self.size))
                tasks = [queue.popleft() for _ in range(size)]
                if not worker.give(tasks):  # it died before taking them: none was started
                    queue.extendleft(reversed(tasks))
                    self._replace(worker, queue, None, "")

    def _collect(self, queue: deque[Task], done: dict[int, R]) -> int:
        """Wait until a message arrives or the nearest deadline passes; take every message there is."""
        now = time.monotonic()
        watched = [w for w in self._workers if w.pending or not w.ready]
        deadlines = [w.since + (self.limit_s if w.ready else START_LIMIT_S) for w in watched]
        if not watched:
            raise AssertionError("grading pool: nothing in flight but results missing")  # a bug, not an input
        ready = wait([w.conn for w in watched], timeout=max(0.0, min(deadlines) - now))
        finished = 0
        for worker in [w for w in watched if w.conn in ready]:
            try:
                while worker.conn.poll():
                    message = worker.conn.recv()
                    worker.since = time.monotonic()
                    if isinstance(message, str) and message == "ready":
                        worker.ready = True
                        self._start_failures = 0
                        continue
                    index, _, _ = worker.pending.popleft()
                    done[index] = message
                    finished += 1
            except (EOFError, OSError):
                worker.process.join(timeout=1.0)
                code = worker.process.exitcode
                self.crashed += 1
                finished += self._replace(
                    worker, queue, done, f"crash: grading worker exited with code {code}"
                )
        return finished

    def _enforce_limits(self, queue: deque[Task], done: dict[int, R]) -> int:
        """Kill every worker past its limit; a message that just arrived wins over the kill."""
        finished = 0
        now = time.monotonic()
        for worker in list(self._workers):
            limit = self.limit_s if worker.ready else START_LIMIT_S
            if (worker.pending or not worker.ready) and now - worker.since > limit and not worker.conn.poll():
                reason = (
                    f"timeout: grading worker killed after {now - worker.since:.2f} s (limit {limit:g} s)"
                )
                worker.stop(kill=True)
                self.killed += 1
                finished += self._replace(worker, queue, done, reason)
        return finished

    def _replace(self, worker: _Worker, queue: deque[Task], done: dict[int, R] | None, reason: str) -> int:
        """Swap a dead or killed worker for a new one. Its current task gets `reason`; the rest go back to the queue."""
        worker.stop(kill=True)
        self._workers[self._workers.index(worker)] = self._new_worker()
        if not worker.ready:
            self._start_failures += 1
            if self._start_failures >= START_FAILURES:
                raise RuntimeError(
                    f"grading workers keep dying before they are ready ({reason}); see their stderr. A spawned "
                    "worker re-imports the main module: run from a file whose work is under "
                    "`if __name__ == '__main__':`, with a module-level fn"
                )
        if done is None or not worker.pending:
            return 0
        index, _, _ = worker.pending.popleft()
        done[index] = self.on_failure(reason)
        queue.extendleft(reversed(worker.pending))
        return 1


def verifier_pool(
    workers: int | None = None,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    slack_s: float = SLACK_S,
    chunk: int = CHUNK,
    fn: GradeFn = verify,
) -> WorkerPool[Verdict]:
    """A `WorkerPool` of `verify` (or another `GradeFn`): the graders of `rlvr verify` and the evals."""
    return WorkerPool(
        workers, fn=fn, on_failure=failed_verdict, timeout_s=timeout_s, slack_s=slack_s, chunk=chunk
    )


def grade_many(
    pairs: Iterable[tuple[str, str]],
    *,
    workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    slack_s: float = SLACK_S,
    chunk: int = CHUNK,
    fn: GradeFn = verify,
    progress: Callable[[int], object] | None = None,
) -> Iterator[Verdict]:
    """One-shot grading: start a pool, stream verdicts in input order, stop the pool when the stream ends or is
    dropped. For repeated batches (a training loop) keep a `verifier_pool` instead: starting workers costs ~0.1 s."""
    with verifier_pool(workers, timeout_s=timeout_s, slack_s=slack_s, chunk=chunk, fn=fn) as pool:
        yield from pool.imap(pairs, progress=progress)


class _Worker:
    """The parent's handle on one worker process: its pipe, the tasks it holds, and when its current one began."""

    def __init__(self, context: multiprocessing.context.SpawnContext, settings: tuple[Any, ...]):
        """settings: what `_serve` takes after the pipe (fn, on_failure, timeout_s, memory_mb)."""
        self.conn, child_end = context.Pipe()
        self.process: BaseProcess = context.Process(
            target=_serve, args=(child_end, *settings), name="rlvr-grader", daemon=True
        )
        self.process.start()
        child_end.close()  # the child holds the only other end, so its death reads as EOF here
        self.ready = False  # it has said "ready": its clock runs only from then
        self.pending: deque[Task] = deque()  # sent to it and not answered; the first is the one it is on
        self.since = time.monotonic()  # when its current task (or its start-up) began, as seen from here
        self.stopped = False

    def give(self, tasks: list[Task]) -> bool:
        """Send a chunk; False if the worker is gone. Only called when it is idle, so it is reading: no block."""
        try:
            self.conn.send([(response, gold) for _, response, gold in tasks])
        except OSError:  # BrokenPipeError, ConnectionResetError
            return False
        self.pending.extend(tasks)
        self.since = time.monotonic()
        return True

    def stop(self, *, kill: bool) -> None:
        """End the process and reap it. Idempotent."""
        if self.stopped:
            return
        self.stopped = True
        if not kill:
            with contextlib.suppress(OSError):  # already gone
                self.conn.send(None)
            self.process.join(timeout=1.0)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.conn.close()
        self.process.close()


def _serve(
    conn: Connection,
    fn: Callable[..., Any],
    on_failure: Callable[[str], Any],
    timeout_s: float,
    memory_mb: int | None,
) -> None:
    """A worker's main loop: read a chunk, send back one result per task, until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the parent, which then stops us
    if memory_mb is not None:
        import resource  # POSIX

        # the whole data segment (heap, private anonymous mappings; Linux >= 4.7), what the worker holds included;
        # never above the hard limit the host set (raising it is not ours to do)
        _, hard = resource.getrlimit(resource.RLIMIT_DATA)
        limit = memory_mb * 2**20 if hard == resource.RLIM_INFINITY else min(memory_mb * 2**20, hard)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, hard))
    try:
        conn.send("ready")
        while (tasks := conn.recv()) is not None:
            for response, gold in tasks:
                conn.send(_grade_one(fn, on_failure, response, gold, timeout_s))
    except (EOFError, OSError):  # the parent is gone
        pass


def _grade_one(
    fn: Callable[..., R], on_failure: Callable[[str], R], response: str, gold: str, timeout_s: float
) -> R:
    try:
        return fn(response, gold, timeout_s=timeout_s)
    except Exception as error:  # verify never raises; another fn might, and one bad pair must not end the run
        return on_failure(f"error: {type(error).__name__}: {error}")


def pool_for(
    final_form: bool, workers: int | None, timeout_s: float = DEFAULT_TIMEOUT_S
) -> WorkerPool[Verdict]:
    """A pool grading by a set's rule: `verify`, or `verify(final_form=True)` for sets whose answers must be written
    as numbers (`rlvr.data.registry.final_form`)."""
    return verifier_pool(
        workers, timeout_s=timeout_s, fn=partial(verify, final_form=True) if final_form else verify
    )
