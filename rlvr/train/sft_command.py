"""`rlvr sft RECIPE.yaml [key=value ...] [--resume] [--json]`: supervised fine-tuning (see `rlvr.train.sft`).

Multi-process: `torchrun --nproc_per_node N -m rlvr sft RECIPE.yaml ...` (gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

import argparse
import json
import os

HELP = "supervised fine-tuning / distillation (cold start) from a recipe"


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
        "  rlvr sft rlvr/recipes/sft/tiny-arith.yaml\n"
        "  rlvr sft rlvr/recipes/sft/tiny-arith.yaml lr=3e-4 max_steps=100 out_dir=runs/try\n"
        "  torchrun --nproc_per_node 2 -m rlvr sft rlvr/recipes/sft/tiny-arith.yaml\n"
    )


def run(args: argparse.Namespace) -> int:
    from rlvr.config import load_config
    from rlvr.recipes import find_recipe
    from rlvr.train.sft import SFTConfig
    from rlvr.train.sft import run as train

    recipe = args.recipe
    overrides = list(args.overrides)
    if recipe is not None and "=" in recipe:  # no recipe, only overrides
        overrides.insert(0, recipe)
        recipe = None
    config = load_config(SFTConfig, find_recipe(recipe, "sft") if recipe else None, overrides)
    figures = train(config, resume=args.resume, progress=not args.no_progress and not args.json)
    if os.environ.get("RANK", "0") != "0":  # under torchrun only the first process reports
        return 0
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"sft: {figures['steps']} steps in {figures['seconds']:.0f} s, train loss {figures['train/loss']:.4f}"
    )
    if "eval/loss" in figures:
        print(f"held-out loss {figures['eval/loss']:.4f}")
    if "eval/accuracy" in figures:
        how = "greedy" if config.eval_temperature == 0 else f"temperature {config.eval_temperature:g}"
        print(
            f"held-out accuracy {100 * figures['eval/accuracy']:.1f}% ({config.eval_generate} problems x "
            f"{config.eval_n}, {how}, graded by rlvr's verifier)"
        )
    print(f"model: {figures['run_dir']}/final   metrics: {figures['run_dir']}/metrics.jsonl")
    return 0
