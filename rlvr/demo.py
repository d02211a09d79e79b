"""`rlvr demo`: the R1 pipeline on a CPU in minutes, with the recipes any run uses.

1. cold start: SFT of a random-init tiny Qwen2 on the synthetic `arith` task (`rlvr sft tiny-arith`);
2. evaluate it on held-out problems (`arith_test`, 4 samples each at temperature 1.0 — the policy GRPO samples
   from — and greedy, graded by the verifier);
3. GRPO with the verifier's 1/0 reward (`rlvr train tiny-grpo`), held-out accuracy every 30 steps;
4. evaluate again; write PNG plots, the before/after table and `report.md` into the run folder.

Each stage is the ordinary command on the shipped recipe, so the demo is also the shortest tour of rlvr.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

HELP = "the R1 pipeline on a CPU in minutes: cold-start SFT, evaluate, GRPO, evaluate, plots and report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (a new numbered one if it exists)")
    parser.add_argument("--sft-steps", type=int, default=None, help="SFT optimizer steps (recipe: 400)")
    parser.add_argument("--rl-steps", type=int, default=None, help="GRPO steps (recipe: 150)")
    parser.add_argument(
        "--eval-problems", type=int, default=500, help="held-out problems (arith_test has 500)"
    )
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.epilog = "The same pipeline on a GPU with a real checkpoint is in the README (deepscaler recipes)."


def fresh_dir(path: Path) -> Path:
    """`path`, or `path-1`, `path-2`, ... when it already exists: a demo never overwrites an earlier run."""
    candidate, k = path, 0
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    return candidate


def evaluate(
    path: Path, problems: list[Any], n: int, temperature: float, max_new_tokens: int
) -> dict[str, float]:
    from rlvr.eval.accuracy import heldout_accuracy
    from rlvr.models.checkpoint import load_model, load_tokenizer

    model, tokenizer = load_model(path), load_tokenizer(path)
    result = heldout_accuracy(
        model,
        tokenizer,
        problems,
        template="plain",
        max_new_tokens=max_new_tokens,
        n=n,
        temperature=temperature,
    )
    greedy = heldout_accuracy(model, tokenizer, problems, template="plain", max_new_tokens=max_new_tokens)
    right = [len(r.completion_ids) for r, c in zip(result.rollouts, result.correct, strict=True) if c]
    wrong = [len(r.completion_ids) for r, c in zip(result.rollouts, result.correct, strict=True) if not c]
    return {
        "accuracy": result.accuracy,
        "greedy_accuracy": greedy.accuracy,
        "length_correct": sum(right) / max(1, len(right)),
        "length_wrong": sum(wrong) / max(1, len(wrong)),
        "truncated": result.truncated,
        "samples": result.samples,
    }


def table(before: dict[str, float], after: dict[str, float]) -> str:
    rows = [
        ("held-out accuracy, sampled (%)", "accuracy", 100.0),
        ("held-out accuracy, greedy (%)", "greedy_accuracy", 100.0),
        ("length of correct responses (tokens)", "length_correct", 1.0),
        ("length of wrong responses (tokens)", "length_wrong", 1.0),
        ("truncated (%)", "truncated", 100.0),
    ]
    lines = ["| | after SFT | after GRPO | Δ |", "|---|---:|---:|---:|"]
    for label, key, scale in rows:
        a, b = before[key] * scale, after[key] * scale
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from rlvr.config import load_config
    from rlvr.data.registry import load_dataset
    from rlvr.eval.accuracy import protocol
    from rlvr.recipes import find_recipe
    from rlvr.report.plots import plot_run
    from rlvr.train import rl, sft
    from rlvr.train.rl_config import RLConfig
    from rlvr.train.sft import SFTConfig

    start = time.time()
    out = fresh_dir(Path(args.out))
    progress = not args.json
    say = (lambda *a: None) if args.json else print

    sft_overrides = [f"out_dir={out / 'sft'}", "eval_generate=0"]
    if args.sft_steps:
        sft_overrides.append(f"max_steps={args.sft_steps}")
    sft_config = load_config(SFTConfig, find_recipe("tiny-arith", "sft"), sft_overrides)
    rl_overrides = [
        f"model={out / 'sft' / 'final'}",
        f"out_dir={out / 'rl'}",
        f"eval_problems={args.eval_problems}",
    ]
    rl_config = load_config(RLConfig, find_recipe("tiny-grpo", "rl"), rl_overrides)
    if args.rl_steps:
        rl_config.stages[0].steps = args.rl_steps
    problems = load_dataset(rl_config.eval_data or "arith_test")[: args.eval_problems]
    settings = (rl_config.eval_n, rl_config.eval_temperature, rl_config.eval_max_new_tokens)

    say(f"[1/4] cold-start SFT of a tiny Qwen2 on `arith` → {out / 'sft'}")
    sft.run(sft_config, progress=progress)
    say(
        f"[2/4] held-out evaluation: {len(problems)} problems × {settings[0]} samples, temperature {settings[1]:g}"
    )
    before = evaluate(out / "sft" / "final", problems, *settings)
    say(
        f"      accuracy after SFT: {100 * before['accuracy']:.1f}% ({protocol(settings[0], settings[1], len(problems))})"
    )
    say(f"[3/4] GRPO with the verifier's reward → {out / 'rl'}")
    rl_figures = rl.run(rl_config, progress=progress)
    say("[4/4] held-out evaluation of the GRPO model, plots, report")
    after = evaluate(out / "rl" / "final", problems, *settings)
    plots = plot_run(out / "rl" / "metrics.jsonl", out / "plots")
    before_after = table(before, after)
    (out / "results.md").write_text(before_after + "\n")
    seconds = time.time() - start
    report = [
        "# rlvr demo",
        "",
        f"Cold-start SFT ({sft_config.max_steps} steps) then GRPO ({rl_figures['steps']} steps) of a tiny Qwen2 on "
        f"column addition; held-out: {len(problems)} `arith_test` problems × {settings[0]} samples at temperature "
        f"{settings[1]:g} (and greedy), graded by rlvr's verifier. {seconds / 60:.1f} minutes in all.",
        "",
        before_after,
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in plots],
        "",
        "Remake any stage: `rlvr sft tiny-arith`, `rlvr train tiny-grpo` (recipes: `rlvr ls`).",
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    figures = {
        "before": before,
        "after": after,
        "gain_points": 100 * (after["accuracy"] - before["accuracy"]),
        "seconds": seconds,
        "run_dir": str(out),
        "report": str(out / "report.md"),
        "plots": [str(p) for p in plots],
    }
    if args.json:
        print(json.dumps(figures))
        return 0
    print()
    print(before_after)
    print(
        f"\nheld-out accuracy ({protocol(settings[0], settings[1], len(problems))}) {100 * before['accuracy']:.1f}% "
        f"after SFT → {100 * after['accuracy']:.1f}% after GRPO ({figures['gain_points']:+.1f} points) in "
        f"{seconds / 60:.1f} min"
    )
    print(f"report: {out / 'report.md'}   plots: {out / 'plots'}")
    return 0
