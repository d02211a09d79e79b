"""`rlvr cp NAME [DEST]`: copy a shipped recipe out to edit it (torchtune's `tune cp`)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from rlvr.recipes import find_recipe

HELP = "copy a shipped recipe to a file you can edit"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="a recipe from `rlvr ls` (e.g. sft/tiny-arith or tiny-arith)")
    parser.add_argument("dest", nargs="?", help="file or directory (default: ./NAME.yaml)")
    parser.add_argument("--force", action="store_true", help="overwrite an existing file")


def run(args: argparse.Namespace) -> int:
    source = find_recipe(args.name)
    dest = Path(args.dest) if args.dest else Path(source.name)
    if dest.is_dir():
        dest = dest / source.name
    if dest.exists() and not args.force:
        raise ValueError(f"{dest} exists (--force overwrites it)")
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, dest)
    print(
        f"{dest}  (run it: {source.read_text().splitlines()[0].lstrip('# ').replace(source.stem, str(dest), 1)})"
    )
    return 0
