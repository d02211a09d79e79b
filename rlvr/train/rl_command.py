"""`rlvr train RECIPE.yaml [key=value ...] [--resume] [--json]`: RL with verifiable rewards (see `rlvr.train.rl`).

Multi-process: `torchrun --nproc_per_node N -m rlvr train RECIPE.yaml ...` (gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

import argparse

from rlvr.train.command import add_recipe_arguments, recipe_config, reporting

HELP = "RL training (GRPO family, staged context lengthening) from a recipe"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_recipe_arguments(
        parser,
        [
            "rlvr train tiny-grpo                       # after `rlvr sft tiny-arith`",
            "rlvr train tiny-grpo lr=1e-5 out_dir=runs/try 'stages=[{steps: 20, max_new_tokens: 64}]'",
            "torchrun --nproc_per_node 2 -m rlvr train tiny-grpo",
        ],
    )


def run(args: argparse.Namespace) -> int:
    from rlvr.train.rl import run as train
    from rlvr.train.rl_config import RLConfig

    config = recipe_config(RLConfig, args, "rl")
    figures = train(config, resume=args.resume, progress=not args.no_progress and not args.json)
    if not reporting(figures, args):
        return 0
    print(f"rl: {figures['steps']} steps in {figures['seconds']:.0f} s")
    if "eval/accuracy_after" in figures:
        from rlvr.eval.accuracy import protocol

        before = figures.get("eval/accuracy_before")
        was = "" if before is None else f"{100 * before:.1f}% -> "
        how = protocol(int(figures["eval/n"]), figures["eval/temperature"], int(figures["eval/problems"]))
        print(f"held-out accuracy {was}{100 * figures['eval/accuracy_after']:.1f}% ({how})")
    print(f"model: {figures['run_dir']}/final   metrics: {figures['run_dir']}/metrics.jsonl")
    return 0
