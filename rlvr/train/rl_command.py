"""`rlvr train RECIPE.yaml [key=value ...] [--resume] [--json]`: RL with verifiable rewards (see `rlvr.train.rl`).

Multi-process: `torchrun --nproc_per_node N -m rlvr train RECIPE.yaml ...` (gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

import argparse
import json
import os

HELP = "RL training (GRPO family, staged context lengthening) from a recipe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", nargs="?", help="a YAML recipe (`rlvr ls` lists the shipped ones)")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override recipe fields")
    parser.add_argument(
        "--resume", action="store_true", help="continue the run in out_dir from its last checkpoint"
    )
    parser.add_argument("--json", action="store_true", help="print the final figures as one JSON object")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.epilog = (
        "examples:\n"
        "  rlvr train tiny-grpo                       # after `rlvr sft tiny-arith`\n"
        "  rlvr train tiny-grpo lr=1e-5 out_dir=runs/try 'stages=[{steps: 20, max_new_tokens: 64}]'\n"
        "  torchrun --nproc_per_node 2 -m rlvr train tiny-grpo\n"
    )


def run(args: argparse.Namespace) -> int:
    from rlvr.config import load_config
    from rlvr.recipes import find_recipe
    from rlvr.train.rl import run as train
    from rlvr.train.rl_config import RLConfig

    recipe = args.recipe
    overrides = list(args.overrides)
    if recipe is not None and "=" in recipe:  # no recipe, only overrides
        overrides.insert(0, recipe)
        recipe = None
    config = load_config(RLConfig, find_recipe(recipe, "rl") if recipe else None, overrides)
    figures = train(config, resume=args.resume, progress=not args.no_progress and not args.json)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the first process reports
        return 0
    if args.json:
        print(json.dumps(figures))
        return 0
    print(f"rl: {figures['steps']} steps in {figures['seconds']:.0f} s")
    if "eval/accuracy_after" in figures:
        before = figures.get("eval/accuracy_before")
        was = "" if before is None else f"{100 * before:.1f}% -> "
        print(f"held-out accuracy {was}{100 * figures['eval/accuracy_after']:.1f}%")
    print(f"model: {figures['run_dir']}/final   metrics: {figures['run_dir']}/metrics.jsonl")
    return 0
