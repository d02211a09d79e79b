"""RL step time: rlvr's `Trainer` vs TRL's `GRPOTrainer` on the same tiny workload, side by side in one process.

    python bench/rl_step.py                        # tiny Qwen2 on CPU, 16 prompts x n=8 x 64 new tokens, 8 steps each
    python bench/rl_step.py --max-new-tokens 256 --steps 3
    python bench/rl_step.py --stop-at-eos          # sequences end at eos: lengths differ between the two sides
    python bench/rl_step.py --json

The same for both: the model (one random-init tiny Qwen2, deep-copied so both start from the same weights), the
prompts (the `arith` set through the `plain` template, in the order rlvr's Trainer takes them, pre-rendered text so
both tokenize to the same ids: checked), prompts per step and group size n, max new tokens, temperature 1.0,
top-p 1, top-k off, the reward (rlvr's `accuracy`), group-normalised advantages (r - mean) / (std + eps), AdamW at
lr 1e-6 with a constant schedule, gradient clipping at 1.0, β = 0 (no reference model), μ = 1, micro-batches of
16 sequences with every micro-batch of the step accumulated into one optimizer step, fp32, no gradient checkpointing.

rlvr's `skip_idle_rows` is off: the random model never answers right, so every group scores 0, every advantage
is 0, and rlvr would skip the whole update (exactly: those rows have no gradient) while TRL computes it. Equal
work is the point here. By default every sequence runs to max new tokens on both sides, so both do the same work: rlvr through
`SamplingParams.ignore_eos` (an engine wrapper here; eos may be sampled and is trained on), TRL through
`generation_kwargs={"min_new_tokens": ...}` (eos is masked out of sampling). `--stop-at-eos` lets both stop at
eos; the table then shows the tokens each side generated.

Per step, rlvr (`Trainer._step`): the next prompts in its seeded epoch order → FastEngine samples the n
completions of each prompt (one prefill per prompt) → rewards in-process (the verifier runs twice per response:
reward and correctness metric) → GRPO advantages → one forward + backward per micro-batch (right-padded rows, the
LM head on completion tokens only) with token-mean aggregation over the whole step (no old-log-prob forward: μ = 1
and one mini-batch, so the ratio is exactly 1; entropy computed detached for the metrics) → clip → AdamW.
TRL (`GRPOTrainer`, loss_type "dapo": token-level, normalised by the step's active tokens, the same as rlvr's
token-mean): `model.generate` on the prompt batch repeated n times (its default path; the continuous-batching
path took ~26 s a step here) → decode → reward function (rlvr's `accuracy`) → advantages → per micro-batch a
forward (prompts left-padded, completions right-padded; log-probs and entropy) + backward; it too skips the
old-log-prob forward (gradient_accumulation_steps is a multiple of steps_per_generation × num_iterations) and loads
no reference model (β = 0) → clip → AdamW. Its per-micro-batch metrics (entropy, clip ratios) cost a few host
syncs; logging, saving and reporting are off. Both optimizers are torch's AdamW (rlvr: foreach; TRL: "adamw_torch").

Timing: TRL's trainer runs the loop; a callback at the end of each TRL optimizer step runs one rlvr step, so the
two alternate step by step and drift on a shared machine hits both. A TRL step is timed from the callback's return
to the next step's end (data loading, generation, update, optimizer step, TRL's bookkeeping), an rlvr step is one
`Trainer._step` call (prompt selection included). The first `--warmup` steps of each are not counted. One torch
thread by default: on a shared 2-core machine two threads made both sides several times slower and erratic.
Reported: median seconds per optimizer step, generated tokens per step, seconds in generation (rlvr's engine call;
TRL's `model.generate`), in the reward, and the rest (the update above all), and TRL/rlvr as the median of the
paired steps' ratios. The last line of stdout is one JSON object with every figure (--json: stdout is only that).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import logging
import statistics
import sys
import tempfile
import time
import warnings
from typing import Any

import torch

from rlvr.models.build import TinyModel
from rlvr.rewards.functions import accuracy
from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams
from rlvr.train import distributed
from rlvr.train.examples import epoch_order
from rlvr.train.rl import RLConfig, Stage, Trainer

TARGET = 3.0  # issue 6: rlvr at least 3x faster per step


class IgnoreEos:
    """The trainer's engine with `ignore_eos` set: every sequence runs to max_new_tokens (equal work)."""

    def __init__(self, engine: RolloutEngine) -> None:
        self.engine = engine

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        return self.engine.generate(prompts, dataclasses.replace(params, ignore_eos=True))


def rlvr_trainer(args: argparse.Namespace, out_dir: str) -> Trainer:
    config = RLConfig(
        model="tiny",
        tiny=TinyModel(hidden_size=args.hidden_size, num_layers=args.layers),
        data="arith",
        eval_data=None,
        template="plain",
        reward="accuracy",
        out_dir=out_dir,
        engine="fast",
        stages=[Stage(steps=10**6, max_new_tokens=args.max_new_tokens, n=args.n)],
        prompts_per_step=args.prompts,
        temperature=1.0,
        micro_batch_size=args.micro_batch_size,
        advantage="grpo",
        loss_agg="token-mean",
        dual_clip=None,  # TRL has no dual clip (it never triggers on-policy anyway: the ratio is 1)
        kl_coef=0.0,
        skip_idle_rows=False,  # equal work: see the docstring
        lr=1e-6,
        schedule="constant",
        max_grad_norm=1.0,
        sample_every=0,
        device="cpu",
        seed=0,
    )
    trainer = Trainer(config, distributed.init("cpu"), resume=False, progress=False)
    if not args.stop_at_eos:
        trainer.engine = IgnoreEos(trainer.engine)
    return trainer


def trl_trainer(
    args: argparse.Namespace, model: Any, tokenizer: Any, prompts: list[str], answers: list[str], out_dir: str
) -> tuple[Any, dict[str, list[float]]]:
    """TRL's GRPOTrainer on `prompts` in order (one step = the next `args.prompts`), and its per-step figures."""
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    sequences = args.prompts * args.n
    if sequences % args.micro_batch_size:
        raise ValueError(
            f"--prompts x --n = {sequences} must be a multiple of --micro-batch-size {args.micro_batch_size}"
        )
    config = GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=args.micro_batch_size,
        # the whole generation batch accumulates into one optimizer step, as rlvr's one mini-batch
        gradient_accumulation_steps=sequences // args.micro_batch_size,
        num_generations=args.n,
        max_completion_length=args.max_new_tokens,
        generation_kwargs=None if args.stop_at_eos else {"min_new_tokens": args.max_new_tokens},
        temperature=1.0,
        top_p=1.0,
        top_k=0,
        learning_rate=1e-6,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=0.2,
        loss_type="dapo",
        scale_rewards="group",
        shuffle_dataset=False,  # rlvr's order, set below
        max_steps=args.warmup + args.steps,
        bf16=False,
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
        seed=0,
    )
    figures: dict[str, list[float]] = {"tokens": [], "reward_s": [], "generate_s": []}

    def accuracy_reward(
        completions: list[str], answer: list[str], completion_ids: list[list[int]], **_: Any
    ) -> list[float | None]:  # TRL's reward-function type: None is "no reward"
        start = time.perf_counter()
        rewards: list[float | None] = [
            accuracy(text, gold) for text, gold in zip(completions, answer, strict=True)
        ]
        figures["tokens"].append(sum(len(ids) for ids in completion_ids))
        figures["reward_s"].append(time.perf_counter() - start)
        return rewards

    dataset = Dataset.from_dict({"prompt": prompts, "answer": answers})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=accuracy_reward,
        args=config,
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    generate = model.generate

    def timed_generate(*a: Any, **k: Any) -> Any:  # TRL's sampling call, timed
        start = time.perf_counter()
        out = generate(*a, **k)
        figures["generate_s"].append(time.perf_counter() - start)
        return out

    model.generate = timed_generate
    return trainer, figures


def prompt_indices(size: int, seed: int, count: int) -> list[int]:
    """The first `count` problems rlvr's Trainer draws (its seeded epoch order, no difficulty skipping)."""
    out: list[int] = []
    epoch = 0
    while len(out) < count:
        out += epoch_order(size, seed, epoch)[: count - len(out)]
        epoch += 1
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--prompts", type=int, default=16, help="prompts per step")
    parser.add_argument("--n", type=int, default=8, help="responses per prompt (group size)")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=8, help="timed optimizer steps per side, alternating")
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps per side first")
    parser.add_argument("--micro-batch-size", type=int, default=16, help="sequences per forward/backward")
    parser.add_argument("--hidden-size", type=int, default=64, help="tiny Qwen2's width")
    parser.add_argument("--layers", type=int, default=2, help="tiny Qwen2's depth")
    parser.add_argument("--stop-at-eos", action="store_true", help="sequences end at eos (unequal work)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0: torch's default; >1 on a shared machine: noise)",
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)

    if args.threads:
        torch.set_num_threads(args.threads)
    quiet()
    summary = summarize(args, *run(args))
    if not args.json:
        report(summary)
    print(json.dumps(summary))
    return 0


def run(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[float], dict[str, list[float]], int]:
    """Both trainers, alternating step by step: rlvr's step metrics, TRL's step seconds and figures, and the
    model's parameter count."""
    from transformers import PrinterCallback

    with tempfile.TemporaryDirectory() as tmp:
        rlvr_side = rlvr_trainer(args, f"{tmp}/rlvr")
        stage = rlvr_side.config.stages[0]
        total = args.warmup + args.steps
        order = prompt_indices(len(rlvr_side.problems), rlvr_side.config.seed, total * args.prompts)
        prompts = [rlvr_side.prompts[i] for i in order]
        answers = [rlvr_side.problems[i].answer for i in order]
        tokenizer = rlvr_side.tokenizer
        for p in set(prompts):  # TRL tokenizes with special tokens added, rlvr's engines without
            assert tokenizer(p)["input_ids"] == tokenizer(p, add_special_tokens=False)["input_ids"]
        model = copy.deepcopy(rlvr_side.model)  # the same initial weights
        trl_side, trl_figures = trl_trainer(args, model, tokenizer, prompts, answers, f"{tmp}/trl")

        rlvr_runs: list[dict[str, Any]] = []
        trl_seconds: list[float] = []
        callback = alternate(rlvr_side, stage, rlvr_runs, trl_seconds)
        trl_side.add_callback(callback)
        trl_side.remove_callback(PrinterCallback)  # it prints the run's final metrics to stdout
        trl_side.train()
        assert rlvr_side.consumed == total * args.prompts, "rlvr drew other prompts than TRL"
    return rlvr_runs, trl_seconds, trl_figures, sum(p.numel() for p in rlvr_side.model.parameters())


def summarize(
    args: argparse.Namespace,
    rlvr_runs: list[dict[str, Any]],
    trl_seconds: list[float],
    trl_figures: dict[str, list[float]],
    parameters: int,
) -> dict[str, Any]:
    import transformers
    import trl

    w, total = args.warmup, args.warmup + args.steps
    rlvr_s = [r["time/step"] for r in rlvr_runs[w:]]
    trl_s = trl_seconds[w:]
    paired = [t / r for t, r in zip(trl_s, rlvr_s, strict=True)]
    results = {
        "rlvr": side(
            rlvr_s,
            [r["tokens"] for r in rlvr_runs[w:]],
            [r["time/generate"] for r in rlvr_runs[w:]],
            [r["time/reward"] for r in rlvr_runs[w:]],
        ),
        "trl": side(
            trl_s,
            trl_figures["tokens"][w:total],
            trl_figures["generate_s"][w:total],
            trl_figures["reward_s"][w:total],
        ),
    }
    results["rlvr"]["update_s"] = statistics.median(r["time/update"] for r in rlvr_runs[w:])
    summary: dict[str, Any] = {
        "device": "cpu",
        "model": f"tiny qwen2 (hidden {args.hidden_size}, {args.layers} layers)",
        "parameters": parameters,
        "threads": torch.get_num_threads(),
        "prompts": args.prompts,
        "n": args.n,
        "sequences": args.prompts * args.n,
        "max_new_tokens": args.max_new_tokens,
        "stop_at_eos": args.stop_at_eos,
        "micro_batch_size": args.micro_batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "sides": results,
        "speedup": statistics.median(paired),
        "speedup_min": min(paired),
        "speedup_max": max(paired),
        "target": TARGET,
    }
    summary["meets_target"] = summary["speedup"] >= TARGET
    return summary


def report(summary: dict[str, Any]) -> None:
    """The readable table."""
    s = summary
    print(
        f"{s['model']} on cpu ({s['threads']} threads): {s['prompts']} prompts x n={s['n']} = {s['sequences']} "
        f"sequences x {s['max_new_tokens']} new tokens{' (stop at eos)' if s['stop_at_eos'] else ''}, "
        f"micro-batch {s['micro_batch_size']}, median of {s['steps']} steps each after {s['warmup']} warm-up, "
        "alternating"
    )
    print(
        f"{'side':6} {'s/step':>8} {'min':>8} {'max':>8} {'tokens':>8} {'generate s':>11} {'reward s':>9} "
        f"{'rest s':>8}"
    )
    for name, r in s["sides"].items():
        print(
            f"{name:6} {r['seconds']:8.3f} {r['seconds_min']:8.3f} {r['seconds_max']:8.3f} "
            f"{r['tokens']:8.0f} {r['generate_s']:11.3f} {r['reward_s']:9.3f} {r['rest_s']:8.3f}"
        )
    print(
        f"trl / rlvr: {s['speedup']:.2f}x per step (median of paired steps; {s['speedup_min']:.2f}-"
        f"{s['speedup_max']:.2f}x); target >= {TARGET:.0f}x: {'met' if s['meets_target'] else 'NOT met'}"
    )


def alternate(rlvr: Trainer, stage: Stage, runs: list[dict[str, Any]], trl_seconds: list[float]) -> Any:
    """A TRL callback: at the end of each TRL optimizer step, time it, then run and time one rlvr step."""
    from transformers import TrainerCallback

    class Alternate(TrainerCallback):
        resume = 0.0

        def on_train_begin(self, *_: Any, **__: Any) -> None:
            self.resume = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            trl_seconds.append(time.perf_counter() - self.resume)
            start = time.perf_counter()
            metrics = rlvr._step(stage)
            rlvr.step += 1
            rlvr.stage_step += 1
            metrics["time/step"] = time.perf_counter() - start
            metrics["tokens"] = round(
                metrics["train/response_length"] * metrics["train/groups_sampled"] * stage.n
            )
            runs.append(metrics)
            self.resume = time.perf_counter()

    return Alternate()


def side(
    seconds: list[float], tokens: list[float], generate_s: list[float], reward_s: list[float]
) -> dict[str, float]:
    """Medians over the timed steps; `rest_s` is everything but generation and reward (the update above all)."""
    return {
        "seconds": statistics.median(seconds),
        "seconds_min": min(seconds),
        "seconds_max": max(seconds),
        "tokens": statistics.median(tokens),
        "generate_s": statistics.median(generate_s),
        "reward_s": statistics.median(reward_s),
        "rest_s": statistics.median(s - g - r for s, g, r in zip(seconds, generate_s, reward_s, strict=True)),
    }


def quiet() -> None:
    """TRL and transformers warn about experimental features and CPU settings on every run."""
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    for name in ("trl", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


if __name__ == "__main__":
    sys.exit(main())
