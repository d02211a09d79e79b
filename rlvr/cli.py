"""`rlvr <command>`: one sub-command per stage a user runs. Each command's work lives in its own package."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable


def _verify(args: argparse.Namespace) -> int:
    from rlvr.rewards.grade_file import verify_file

    summary = verify_file(
        args.input,
        args.output,
        response_key=args.response_key,
        gold_key=args.gold_key,
        workers=args.workers,
        timeout_s=args.timeout,
        skip_bad=args.skip_bad,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(summary.to_dict()))
    else:
        print(
            f"graded {summary.total} responses: {summary.correct} correct, {summary.incorrect} incorrect "
            f"(accuracy {summary.accuracy:.1%}), {summary.timeouts} timeouts, {summary.skipped} skipped; "
            f"{summary.calls_per_s:.0f} calls/s; wrote {args.output}"
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr", description="RL from verifiable rewards for reasoning LLMs."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("verify", help="grade a JSONL file of responses against gold answers")
    p.add_argument("input", help="JSONL, one object per line with a response and a gold answer")
    p.add_argument(
        "-o",
        "--output",
        required=True,
        help="JSONL to write: the input records plus correct/extracted/reason",
    )
    p.add_argument(
        "--response-key", default="response", help="field holding the model response (default: response)"
    )
    p.add_argument("--gold-key", default="answer", help="field holding the gold answer (default: answer)")
    p.add_argument("--workers", type=int, default=None, help="grading processes (default: one per CPU)")
    p.add_argument("--timeout", type=float, default=1.0, help="seconds allowed per response (default: 1)")
    p.add_argument(
        "--skip-bad", action="store_true", help="report and skip malformed lines instead of stopping"
    )
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(run=_verify)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    run: Callable[[argparse.Namespace], int] = args.run
    try:
        return run(args)
    except (ValueError, OSError) as e:  # bad input: one clear line, no traceback
        print(f"rlvr {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
