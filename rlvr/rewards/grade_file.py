"""Grade a JSONL file of responses: what `rlvr verify` runs.

Records stream from the input through a `VerifierPool` into the output, which is written atomically: a malformed
line (without `skip_bad`) or a crash leaves no output file, and never a half-written one.
"""

from __future__ import annotations

import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rlvr.io import JsonlError, atomic_write, read_jsonl
from rlvr.rewards.math import DEFAULT_TIMEOUT_S
from rlvr.rewards.pool import VerifierPool


@dataclass(frozen=True, slots=True)
class VerifySummary:
    total: int  # records graded
    correct: int
    incorrect: int
    skipped: int  # malformed lines left out (with skip_bad)
    timeouts: int
    accuracy: float  # correct / total (0 when nothing was graded)
    seconds: float
    calls_per_s: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _text(record: dict[str, Any], key: str, where: str) -> str:
    """The field as a string; numbers are allowed (golds like 27.0 or 5), anything else is an error."""
    if key not in record:
        raise JsonlError(f"{where}: missing field {key!r} (fields: {', '.join(sorted(record)) or 'none'})")
    value = record[key]
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)
    raise JsonlError(f"{where}: field {key!r} must be a string or a number, got {type(value).__name__}")


def verify_file(
    in_path: str | Path,
    out_path: str | Path,
    *,
    response_key: str = "response",
    gold_key: str = "answer",
    workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    skip_bad: bool = False,
    progress: bool = True,
) -> VerifySummary:
    """Grade every record of `in_path`; write them to `out_path` with `correct`, `extracted` and `reason` added.

    Output keys `correct`, `extracted`, `reason` overwrite input fields of the same name. A malformed line raises
    JsonlError naming the file and line, unless `skip_bad`, which reports it on stderr and leaves it out.
    """
    skipped = 0

    def report(err: JsonlError) -> None:
        nonlocal skipped
        skipped += 1
        print(f"skipped {err}", file=sys.stderr)

    pending: deque[dict[str, Any]] = deque()

    def pairs() -> Iterator[tuple[str, str]]:
        for line_no, record in read_jsonl(in_path, on_error=report if skip_bad else None):
            where = f"{in_path}:{line_no}"
            try:
                pair = _text(record, response_key, where), _text(record, gold_key, where)
            except JsonlError as err:
                if not skip_bad:
                    raise
                report(err)
                continue
            pending.append(record)
            yield pair

    with open(in_path, encoding="utf-8") as f:
        lines = sum(1 for line in f if line.strip())
    start = time.perf_counter()
    counts = {"total": 0, "correct": 0, "timeouts": 0}
    bar = tqdm(total=lines, unit="resp", disable=not progress, file=sys.stderr, dynamic_ncols=True)
    with bar, atomic_write(out_path) as out, VerifierPool(workers, timeout_s=timeout_s) as pool:
        for verdict in pool.imap(pairs()):
            record = pending.popleft()
            record.update(correct=verdict.correct, extracted=verdict.extracted, reason=verdict.reason)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts["total"] += 1
            counts["correct"] += verdict.correct
            counts["timeouts"] += verdict.reason.startswith("timeout")
            bar.update(1)
    seconds = time.perf_counter() - start
    total = counts["total"]
    return VerifySummary(
        total=total,
        correct=counts["correct"],
        incorrect=total - counts["correct"],
        skipped=skipped,
        timeouts=counts["timeouts"],
        accuracy=counts["correct"] / total if total else 0.0,
        seconds=round(seconds, 3),
        calls_per_s=round(total / seconds, 1) if seconds > 0 else 0.0,
    )
