"""`rlvr ls`: the shipped recipes and the command that runs each (torchtune's `tune ls`)."""

from __future__ import annotations

import argparse
import json

from rlvr.recipes import command_line, shipped

HELP = "list the shipped recipes"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object")


def run(args: argparse.Namespace) -> int:
    rows = [
        {"name": f"{p.parent.name}/{p.stem}", "command": command_line(p), "path": str(p)} for p in shipped()
    ]
    if args.json:
        print(json.dumps({"recipes": rows}))
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        print(f"{r['name']:<{width}}  {r['command']}")
    print("\ncopy one to edit it: rlvr cp NAME [DEST]")
    return 0
