"""Grade a JSONL file of responses: what `rlvr verify` runs (`verify_file`, plus the command's arguments).

Records stream from the input through a `verifier_pool` into the output, which is written atomically: a malformed
line (without `skip_bad`) or a crash leaves no output file, and never a half-written one.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any

from tqdm import tqdm

from rlvr.data.schema import answer_text
from rlvr.io import JsonlError, atomic_write, read_jsonl
from rlvr.rewards.math import verify
from rlvr.rewards.pool import DEFAULT_TIMEOUT_S, SLACK_S, verifier_pool

HELP = "grade a JSONL file of responses against gold answers"
EPILOG = f"""\
Each input line is a JSON object with a response and a gold answer; blank lines are ignored. A gold given as a
JSON number is graded as its decimal text (5 -> "5", 27.0 -> "27", 1e-07 -> "0.0000001"); a response must be a
string. OUT gets one line per graded input line, in input order: the input object with `correct`, `extracted` and
`reason` added (replacing input fields of those names). OUT is written to a temporary file beside it and renamed
when complete, so an error leaves any previous OUT untouched.

A malformed line (bad JSON, not an object, a missing or wrongly typed field) stops the run with exit code 2 and
names the file and line; with --skip-bad it is reported on stderr, left out of OUT and counted as skipped.
Each response gets --timeout seconds (a cooperative limit inside the verifier); a worker still busy {SLACK_S:g} s after
that is killed and the response graded incorrect with reason "timeout: ...".
"""


def add_pool_arguments(parser: argparse.ArgumentParser) -> None:
    """--workers and --timeout, for every command that grades through the verifier pool."""
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        help="grading processes (default: one per CPU; 0 grades in this process, without the kill-based limit)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help=f"seconds allowed per response (default: {DEFAULT_TIMEOUT_S:g})",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument(
        "input", metavar="IN.jsonl", help="one JSON object per line with a response and a gold"
    )
    parser.add_argument(
        "-o", "--output", metavar="OUT.jsonl", required=True, help="where to write the graded records"
    )
    parser.add_argument(
        "--response-key", default="response", help="field holding the model response (default: response)"
    )
    parser.add_argument(
        "--gold-key", default="answer", help="field holding the gold answer (default: answer)"
    )
    add_pool_arguments(parser)
    parser.add_argument(
        "--final-form",
        action="store_true",
        help="numeric answers must be written as numbers: arithmetic left undone (9 + 73) is incorrect",
    )
    parser.add_argument(
        "--skip-bad", action="store_true", help="report and skip malformed lines instead of stopping"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the summary as one JSON object (the only thing on stdout)"
    )


def run(args: argparse.Namespace) -> int:
    summary = verify_file(
        args.input,
        args.output,
        response_key=args.response_key,
        gold_key=args.gold_key,
        workers=args.workers,
        timeout_s=args.timeout,
        skip_bad=args.skip_bad,
        progress=not args.json,
        final_form=args.final_form,
    )
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(
            f"graded {summary.total} responses: {summary.correct} correct, {summary.incorrect} incorrect "
            f"(accuracy {summary.accuracy:.1%}), {summary.timeouts} timeouts, {summary.skipped} skipped; "
            f"{summary.seconds:.1f} s, {summary.calls_per_s:.0f} calls/s; wrote {args.output}"
        )
    return 0


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
    """The field as a string. Numbers are allowed (golds like 27.0 or 5) and written out in positional decimal,
    since `str(1e-07)` is "1e-07", which the verifier does not read as a number; anything else is an error."""
    if key not in record:
        raise JsonlError(f"{where}: missing field {key!r} (fields: {', '.join(sorted(record)) or 'none'})")
    value = record[key]
    if isinstance(value, str):
        return value
    text = answer_text(value)
    if text is not None:
        return text
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
    final_form: bool = False,
) -> VerifySummary:
    """Grade every record of `in_path`; write them to `out_path` with `correct`, `extracted` and `reason` added.

    Output keys `correct`, `extracted`, `reason` overwrite input fields of the same name. A malformed line raises
    JsonlError naming the file and line, unless `skip_bad`, which reports it on stderr and leaves it out.
    final_form: grade with `verify(final_form=True)` (answers to numeric golds must be numbers).
    """
    skipped = 0

    def report(err: JsonlError) -> None:
        nonlocal skipped
        skipped += 1
        tqdm.write(f"skipped {err}", file=sys.stderr)  # above the progress bar, not through it
        bar.update(1)

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

    with open(in_path, "rb") as f:  # for the bar's total; bytes, so a bad line is reported where it is read
        lines = sum(1 for line in f if line.strip())
    start = time.perf_counter()
    counts = {"total": 0, "correct": 0, "timeouts": 0}
    # disable=None: a bar only when stderr is a terminal, not lines of it in a log file
    bar = tqdm(
        total=lines, unit="resp", disable=None if progress else True, file=sys.stderr, dynamic_ncols=True
    )
    with (
        bar,
        atomic_write(out_path) as out,
        verifier_pool(
            workers, timeout_s=timeout_s, fn=partial(verify, final_form=True) if final_form else verify
        ) as pool,
    ):
        for verdict in pool.imap(pairs(), progress=bar.update):  # counts finished ones, in any order
            record = pending.popleft()
            record.update(correct=verdict.correct, extracted=verdict.extracted, reason=verdict.reason)
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
            counts["total"] += 1
            counts["correct"] += verdict.correct
            counts["timeouts"] += verdict.reason.startswith("timeout")
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
