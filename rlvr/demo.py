"""`rlvr demo`: the R1 pipeline on a CPU in minutes, with the recipes any run uses.

Without `--model`, on a random-init tiny model:

1. cold start: SFT of a random-init tiny Qwen2 on the synthetic `arith` task (`rlvr sft tiny-arith`);
2. evaluate it on held-out problems (`arith_test`, 4 samples each at temperature 1.0 — the policy GRPO samples
   from — and greedy, graded by the verifier);
3. GRPO with the verifier's 1/0 reward (`rlvr train tiny-grpo`), held-out accuracy every 30 steps;
4. evaluate again; write PNG plots, the before/after table and `report.md` into the run folder.

With `--model NAME` (a pretrained instruct model: `rlvr models fetch smollm2-135m-instruct` first), GRPO with
chain-of-thought on seeded word problems (`words`; the `smollm2-grpo` recipe), held-out accuracy on `words_test`
measured by the trainer before the first step and after the last, then the same plots and report.

Each stage is the ordinary command on the shipped recipe, so the demo is also the shortest tour of rlvr.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HELP = "the R1 pipeline on a CPU in minutes: cold-start SFT, evaluate, GRPO, evaluate, plots and report"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/demo", help="run folder (a new numbered one if it exists)")
    parser.add_argument(
        "--model",
        default=None,
        help="a pretrained model (registered name, checkpoint directory, .gguf): GRPO on word problems "
        "(recipe smollm2-grpo) instead of the tiny pipeline",
    )
    parser.add_argument("--sft-steps", type=int, default=None, help="SFT optimizer steps (tiny; recipe: 400)")
    parser.add_argument(
        "--rl-steps", type=int, default=None, help="GRPO steps (recipes: tiny-grpo 150, smollm2-grpo 20)"
    )
    parser.add_argument(
        "--eval-problems", type=int, default=None, help="held-out problems (tiny: 500; smollm2-grpo: 200)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of each stage (data order, sampling)")
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object")
    parser.epilog = (
        "rlvr models fetch smollm2-135m-instruct && rlvr demo --model smollm2-135m-instruct: a real model "
        "learning on 2 CPU cores. The pipeline on a GPU with a large checkpoint is in the README."
    )


def fresh_dir(path: Path) -> Path:
    """`path`, or `path-1`, `path-2`, ... when it already exists: a demo never overwrites an earlier run."""
    candidate, k = path, 0
    while candidate.exists():
        k += 1
        candidate = path.with_name(f"{path.name}-{k}")
    return candidate


def evaluate(path: Path, problems: list[Any], config: Any) -> dict[str, float]:
    """Held-out accuracy of the checkpoint at `path` as the RL `config` measures it (its template, n, temperature,
    token budget and its eval set's grading rule), and greedy."""
    from rlvr.data.registry import final_form
    from rlvr.eval.accuracy import heldout_accuracy
    from rlvr.models.checkpoint import load_model, load_tokenizer

    model, tokenizer = load_model(path), load_tokenizer(path)
    common = dict(
        template=config.template,
        max_new_tokens=config.eval_max_new_tokens or config.stages[-1].max_new_tokens,
        final_form=final_form(config.eval_data) if config.final_form is None else config.final_form,
    )
    result = heldout_accuracy(
        model, tokenizer, problems, n=config.eval_n, temperature=config.eval_temperature, **common
    )
    greedy = heldout_accuracy(model, tokenizer, problems, **common)
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


# (label, key, scale) rows of the before/after table
TINY_ROWS = [
    ("held-out accuracy, sampled (%)", "accuracy", 100.0),
    ("held-out accuracy, greedy (%)", "greedy_accuracy", 100.0),
    ("length of correct responses (tokens)", "length_correct", 1.0),
    ("length of wrong responses (tokens)", "length_wrong", 1.0),
    ("truncated (%)", "truncated", 100.0),
]
PRETRAINED_ROWS = [("held-out accuracy (%)", "accuracy", 100.0), ("truncated (%)", "truncated", 100.0)]
PRETRAINED_RECIPE = "smollm2-grpo"  # GRPO of a small instruct model on `words`, for `--model`


@dataclass
class Outcome:
    """What a demo pipeline measured, for the table, the report and --json."""

    before: dict[str, float]
    after: dict[str, float]
    columns: tuple[str, str]  # the table's before / after headings
    rows: list[tuple[str, str, float]]
    protocol: str  # how held-out accuracy was sampled, in `rlvr.eval.accuracy.protocol`'s words
    summary: str  # the report's opening sentence (what was trained on what)
    remake: str  # the commands that rerun each stage
    metrics: Path  # the RL run's metrics.jsonl, for the plots


def table(outcome: Outcome) -> str:
    lines = [f"| | {outcome.columns[0]} | {outcome.columns[1]} | Δ |", "|---|---:|---:|---:|"]
    for label, key, scale in outcome.rows:
        a, b = outcome.before[key] * scale, outcome.after[key] * scale
        lines.append(f"| {label} | {a:.1f} | {b:.1f} | {b - a:+.1f} |")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    start = time.time()
    out = fresh_dir(Path(args.out))
    progress = not args.json
    say = (lambda *a: None) if args.json else print
    if args.model is None:
        outcome = _tiny(args, out, say, progress)
    elif args.sft_steps:
        raise SystemExit("rlvr demo: error: --sft-steps is for the tiny pipeline; --model runs GRPO only")
    else:
        outcome = _pretrained(args, out, say, progress)
    return _finish(outcome, out, time.time() - start, args.json)


def _tiny(args: argparse.Namespace, out: Path, say: Callable[..., None], progress: bool) -> Outcome:
    """Cold-start SFT of a random-init tiny Qwen2, evaluate, GRPO, evaluate (each a separate held-out run)."""
    from rlvr.config import load_config
    from rlvr.data.registry import load_dataset
    from rlvr.eval.accuracy import protocol
    from rlvr.recipes import find_recipe
    from rlvr.train import rl, sft
    from rlvr.train.rl_config import RLConfig
    from rlvr.train.sft import SFTConfig

    eval_problems = args.eval_problems or 500
    sft_overrides = [f"out_dir={out / 'sft'}", "eval_generate=0", f"seed={args.seed}"]
    if args.sft_steps:
        sft_overrides.append(f"max_steps={args.sft_steps}")
    sft_config = load_config(SFTConfig, find_recipe("tiny-arith", "sft"), sft_overrides)
    rl_overrides = [
        f"model={out / 'sft' / 'final'}",
        f"out_dir={out / 'rl'}",
        f"eval_problems={eval_problems}",
        f"seed={args.seed}",
    ]
    rl_config = load_config(RLConfig, find_recipe("tiny-grpo", "rl"), rl_overrides)
    if args.rl_steps:
        rl_config.stages[0].steps = args.rl_steps
    problems = load_dataset(rl_config.eval_data or "arith_test")[:eval_problems]
    how = protocol(rl_config.eval_n, rl_config.eval_temperature, len(problems))

    say(f"[1/4] cold-start SFT of a tiny Qwen2 on `arith` → {out / 'sft'}")
    sft.run(sft_config, progress=progress)
    say(f"[2/4] held-out evaluation ({how}, and greedy)")
    before = evaluate(out / "sft" / "final", problems, rl_config)
    say(f"      accuracy after SFT: {100 * before['accuracy']:.1f}% ({how})")
    say(f"[3/4] GRPO with the verifier's reward → {out / 'rl'}")
    rl_figures = rl.run(rl_config, progress=progress)
    say("[4/4] held-out evaluation of the GRPO model, plots, report")
    after = evaluate(out / "rl" / "final", problems, rl_config)
    return Outcome(
        before, after, ("after SFT", "after GRPO"), TINY_ROWS, how,
        f"Cold-start SFT ({sft_config.max_steps} steps) then GRPO ({rl_figures['steps']} steps) of a tiny Qwen2 "
        f"on column addition; held-out: {len(problems)} `arith_test` problems ({how}, and greedy), graded by "
        "rlvr's verifier.",
        "`rlvr sft tiny-arith`, `rlvr train tiny-grpo`", out / "rl" / "metrics.jsonl",
    )  # fmt: skip


def _pretrained(args: argparse.Namespace, out: Path, say: Callable[..., None], progress: bool) -> Outcome:
    """GRPO of a pretrained model with the `smollm2-grpo` recipe; the trainer's own held-out evaluations before
    the first step and after the last are the before/after (no second evaluation of the same weights)."""
    from rlvr.config import load_config
    from rlvr.eval.accuracy import protocol
    from rlvr.models.registry import resolve
    from rlvr.recipes import find_recipe
    from rlvr.train import rl
    from rlvr.train.rl_config import RLConfig

    resolve(args.model)  # an unknown or unfetched model fails here, in one line, before anything is written
    overrides = [f"model={args.model}", f"out_dir={out / 'rl'}", f"seed={args.seed}"]
    if args.eval_problems:
        overrides.append(f"eval_problems={args.eval_problems}")
    config = load_config(RLConfig, find_recipe(PRETRAINED_RECIPE, "rl"), overrides)
    if args.rl_steps:
        config.stages[0].steps = args.rl_steps
    how = protocol(config.eval_n, config.eval_temperature, config.eval_problems)
    steps = sum(s.steps for s in config.stages)
    say(
        f"[1/2] GRPO of {args.model} on `{config.data}`, {steps} steps; held-out `{config.eval_data}` ({how})"
    )
    say(f"      before the first step and after the last → {out / 'rl'}")
    figures = rl.run(config, progress=progress)
    say("[2/2] plots, report")
    before, after = (
        {"accuracy": figures[f"eval/accuracy_{when}"], "truncated": figures[f"eval/truncated_{when}"]}
        for when in ("before", "after")
    )
    return Outcome(
        before, after, ("before GRPO", "after GRPO"), PRETRAINED_ROWS, how,
        f"GRPO ({steps} steps, recipe `{PRETRAINED_RECIPE}`) of `{args.model}` on `{config.data}`, seeded word "
        f"problems, chain-of-thought, the verifier's 1/0 reward; held-out: {config.eval_problems} "
        f"`{config.eval_data}` problems ({how}).",
        f"`rlvr train {PRETRAINED_RECIPE} model={args.model}`", out / "rl" / "metrics.jsonl",
    )  # fmt: skip


def _finish(outcome: Outcome, out: Path, seconds: float, as_json: bool) -> int:
    """Plots, results.md, report.md; the figures printed (a table and one line, or one JSON object)."""
    from rlvr.report.plots import plot_run

    plots = plot_run(outcome.metrics, out / "plots")
    before_after = table(outcome)
    (out / "results.md").write_text(before_after + "\n")
    report = [
        "# rlvr demo",
        "",
        f"{outcome.summary} {seconds / 60:.1f} minutes in all.",
        "",
        before_after,
        "",
        *[f"![{p.stem}](plots/{p.name})" for p in plots],
        "",
        f"Remake any stage: {outcome.remake} (recipes: `rlvr ls`).",
    ]
    (out / "report.md").write_text("\n".join(report) + "\n")
    gain = 100 * (outcome.after["accuracy"] - outcome.before["accuracy"])
    figures = {
        "before": outcome.before,
        "after": outcome.after,
        "gain_points": round(gain, 2),
        "protocol": outcome.protocol,
        "seconds": round(seconds, 1),
        "run_dir": str(out),
        "report": str(out / "report.md"),
        "plots": [str(p) for p in plots],
    }
    if as_json:
        print(json.dumps(figures))
        return 0
    print()
    print(before_after)
    print(
        f"\nheld-out accuracy ({outcome.protocol}) {100 * outcome.before['accuracy']:.1f}% {outcome.columns[0]} → "
        f"{100 * outcome.after['accuracy']:.1f}% {outcome.columns[1]} ({gain:+.1f} points) in {seconds / 60:.1f} min"
    )
    print(f"report: {out / 'report.md'}   plots: {out / 'plots'}")
    return 0
