"""What `rlvr sft` and `rlvr train` share on the command line: RECIPE [key=value ...] [--resume] [--json]."""

from __future__ import annotations

import argparse
import os
from typing import Any, TypeVar

C = TypeVar("C")


def add_recipe_arguments(parser: argparse.ArgumentParser, examples: list[str]) -> None:
    parser.add_argument("recipe", nargs="?", help="a YAML recipe (`rlvr ls` lists the shipped ones)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override recipe fields")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in out_dir from its last checkpoint"
    )
    parser.add_argument("--json", action="store_true", help="print the final figures as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.epilog = "examples:\n" + "".join(f"  {line}\n" for line in examples)


def recipe_config(cls: type[C], args: argparse.Namespace, stage: str) -> C:
    """The config of `args.recipe` (a path or a shipped name of `stage`) with the key=value overrides."""
    from rlvr.config import load_config
    from rlvr.recipes import find_recipe

    recipe, overrides = args.recipe, list(args.overrides)
    if recipe is not None and "=" in recipe:  # no recipe, only overrides
        overrides.insert(0, recipe)
        recipe = None
    return load_config(cls, find_recipe(recipe, stage) if recipe else None, overrides)


def reporting(figures: dict[str, Any], args: argparse.Namespace) -> bool:
    """Whether this process prints (only the first under torchrun); prints the JSON itself under --json."""
    if os.environ.get("RANK", "0") != "0":
        return False
    if args.json:
        import json

        print(json.dumps(figures))
        return False
    return True
