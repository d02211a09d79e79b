"""`rlvr sft RECIPE.yaml [key=value ...] [--resume] [--json]`: supervised fine-tuning (see `rlvr.train.sft`).

Multi-process: `torchrun --nproc_per_node N -m rlvr sft RECIPE.yaml ...` (gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

import argparse

from rlvr.train.command import add_recipe_arguments, recipe_config, reporting

HELP = "supervised fine-tuning / distillation (cold start) from a recipe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(
        parser,
        [
            "rlvr sft tiny-arith",
            "rlvr sft tiny-arith lr=3e-4 max_steps=100 out_dir=runs/try",
            "torchrun --nproc_per_node 2 -m rlvr sft tiny-arith",
        ],
    )


def run(args: argparse.Namespace) -> int:
    from rlvr.train.sft import SFTConfig
    from rlvr.train.sft import run as train

    config = recipe_config(SFTConfig, args, "sft")
    figures = train(config, resume=args.resume, progress=not args.no_progress and not args.json)
    if not reporting(figures, args):
        return 0
    print(
        f"sft: {figures['steps']} steps in {figures['seconds']:.0f} s, train loss {figures['train/loss']:.4f}"
    )
    if "eval/loss" in figures:
        print(f"held-out loss {figures['eval/loss']:.4f}")
    if "eval/accuracy" in figures:
        from rlvr.eval.accuracy import protocol

        how = protocol(int(figures["eval/n"]), figures["eval/temperature"], int(figures["eval/problems"]))
        print(f"held-out accuracy {100 * figures['eval/accuracy']:.1f}% ({how}, graded by rlvr's verifier)")
    print(f"model: {figures['run_dir']}/final   metrics: {figures['run_dir']}/metrics.jsonl")
    return 0
