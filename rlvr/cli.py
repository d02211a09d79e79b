"""`rlvr <command>`: a thin dispatcher. Each command is one module, named in `COMMANDS`, in the package whose work it runs.

A command module has `HELP` (one line for `rlvr --help`), `add_arguments(parser)` (which may set an epilog with
details) and `run(args) -> exit code`.
It imports heavy dependencies (torch, vLLM) inside `run`, so `rlvr --help` and light commands stay fast.
Adding a command is one import and one line here.
"""

from __future__ import annotations

import argparse
import sys
from typing import Protocol

from rlvr import demo
from rlvr.data import command as data_command
from rlvr.eval import grade, sample
from rlvr.eval import run as eval_run
from rlvr.models import command as models_command
from rlvr.recipes import cp, ls
from rlvr.rewards import grade_file
from rlvr.train import rl_command, sft_command


class Command(Protocol):
    HELP: str

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


COMMANDS: dict[str, Command] = {
    "verify": grade_file,
    "data": data_command,
    "models": models_command,
    "sft": sft_command,
    "train": rl_command,
    "eval": eval_run,
    "grade": grade,
    "sample": sample,
    "demo": demo,
    "ls": ls,
    "cp": cp,
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rlvr",
        description="Reinforcement learning from verifiable rewards for reasoning language models.",
        epilog="Run `rlvr COMMAND --help` for a command's options.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        p = sub.add_parser(
            name,
            help=command.HELP,
            description=command.HELP,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one command; bad input or files end with one clear line on stderr and exit code 2, no traceback."""
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may come after flags (`rlvr sft R.yaml --resume lr=1e-5`): argparse leaves those over
    if extra and hasattr(args, "overrides") and not any(e.startswith("-") for e in extra):
        args.overrides = [*(args.overrides or []), *extra]
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return COMMANDS[args.command].run(args)
    except (ValueError, OSError) as e:
        print(f"rlvr {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"rlvr {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
