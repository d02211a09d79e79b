"""RL step time: rlvr's `Trainer` vs TRL's `GRPOTrainer` on the same workload, side by side in one process.

    python bench/rl_step.py                        # tiny Qwen2 on CPU, 16 prompts x n=8 x 64 new tokens, 8 steps each
    python bench/rl_step.py --max-new-tokens 256 --steps 3
    python bench/rl_step.py --stop-at-eos          # sequences end at eos: lengths differ between the two sides
    python bench/rl_step.py --model smollm2-135m-instruct --dtype bfloat16   # a real model: 8 x n=8 x 128, 3 steps
    python bench/rl_step.py --json

Two workloads. The default is a random-init tiny Qwen2 on `arith`, every sequence run to max new tokens, fp32: equal
work on both sides, the frameworks' overhead at its largest. `--model NAME|PATH` (a registered name, fetched with
`rlvr models fetch NAME`, or a checkpoint directory) is an RL-sized step of a real model, as the smollm2-grpo recipe
runs it: the `words` problems (one or two events; a small instruct model answers some, so groups are mixed) through
the `plain` template (the model's chat template), 8 prompts x n=8, at most 128 new tokens, stopping at eos,
temperature 0.7, lr 2e-5, clip 0.2 / 0.28, micro-batches of 8; every default can be overridden by its flag.

The same for both: the model (rlvr's, deep-copied so both start from the same weights), the prompts (pre-rendered
text in the order rlvr's Trainer takes them, so both tokenize to the same ids: checked), prompts per step and group
size n, max new tokens, temperature, top-p 1, top-k off, the reward (rlvr's `accuracy` with the set's final_form:
"6 + 4" is no answer to a word problem), group-normalised advantages (r - mean) / (std + eps), AdamW with a constant
schedule, gradient clipping at 1.0, β = 0 (no reference model), μ = 1, micro-batches with every micro-batch of the
step accumulated into one optimizer step, no gradient checkpointing. `--dtype bfloat16`: bf16 compute over fp32
master weights on both sides, each framework's best on CPU: rlvr's `dtype: bfloat16` (autocast) and
`rollout_dtype: bfloat16` (the engine samples from a bf16 copy), TRL's `bf16=True` with `use_cpu` (accelerate's
autocast around the model's forward, generation included).

Idle rows. A row whose advantage is 0 (its group scored all-equal) has exactly no gradient; rlvr's
`skip_idle_rows` drops its forward and backward, TRL computes them. On the tiny model every group scores 0, so rlvr
would skip the whole update: off by default there (equal work is the point). With `--model` it is on by default
(`--no-skip-idle-rows` turns it off): the result is the same update, TRL just does not know it needs less. By
default on the tiny model every sequence runs to max new tokens on both sides: rlvr through
`SamplingParams.ignore_eos` (an engine wrapper here; eos may be sampled and is trained on), TRL through
`generation_kwargs={"min_new_tokens": ...}` (eos is masked out of sampling). `--stop-at-eos` (the default with
`--model`) lets both stop at eos; the table then shows the tokens each side generated.

Per step, rlvr (`Trainer._step`): the next prompts in its seeded epoch order → FastEngine samples the n
completions of each prompt (one prefill per prompt) → rewards in-process (the verifier runs twice per response:
reward and correctness metric) → GRPO advantages → one forward + backward per micro-batch (a group's prompt once,
packed with its responses: `share_prompts`; the LM head on completion tokens only) with token-mean aggregation over the whole step (no old-log-prob forward: μ = 1
and one mini-batch, so the ratio is exactly 1; entropy computed detached for the metrics) → clip → AdamW.
TRL (`GRPOTrainer`, loss_type "dapo": token-level, normalised by the step's active tokens, the same as rlvr's
token-mean): `model.generate` on the prompt batch repeated n times (its default path; the continuous-batching
path took ~26 s a step on the tiny model) → decode → reward function (rlvr's `accuracy`) → advantages → per
micro-batch a forward (prompts left-padded, completions right-padded; log-probs and entropy) + backward; it too
skips the old-log-prob forward (gradient_accumulation_steps is a multiple of steps_per_generation × num_iterations)
and loads no reference model (β = 0) → clip → AdamW. Its per-micro-batch metrics (entropy, clip ratios) cost a few
host syncs; logging, saving and reporting are off. Both optimizers are torch's AdamW (rlvr: fused; TRL:
"adamw_torch", foreach). bench/rl_step_trl.py holds the TRL side.

Timing: TRL's trainer runs the loop; a callback at the end of each TRL optimizer step runs one rlvr step, so the
two alternate step by step and drift on a shared machine hits both. A TRL step is timed from the callback's return
to the next step's end (data loading, generation, update, optimizer step, TRL's bookkeeping), an rlvr step is one
`Trainer._step` call (prompt selection included). The first `--warmup` steps of each are not counted. One torch
thread by default: on a shared 2-core machine two threads made both sides several times slower and erratic.
Reported: median seconds per optimizer step, generated tokens per step, the fraction of correct responses, and
the phase split of each side: generate (rlvr's engine call; TRL's `model.generate`), reward, logprob (rlvr: rollout
metrics, advantages, the experience and any stored log-probs; TRL: the rest of its generate-and-score, tokenizing,
decoding, advantages) and update (the rest: forward + backward, clip, AdamW); and TRL/rlvr as the median of the
paired steps' ratios. The last line of stdout is one JSON object with every figure (--json: stdout is only that).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import statistics
import sys
import tempfile
from typing import Any

import torch
from rl_step_trl import alternate, quiet, trl_trainer

from rlvr.models.build import TinyModel
from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams
from rlvr.train import distributed
from rlvr.train.examples import epoch_order
from rlvr.train.rl import RLConfig, Stage, Trainer

TARGET = 3.0  # issue 6: rlvr at least 3x faster per step
PHASES = ("generate", "reward", "logprob", "update")

# the defaults of each workload; a flag given on the command line wins
TINY = {
    "data": "arith", "prompts": 16, "n": 8, "max_new_tokens": 64, "micro_batch_size": 16, "steps": 8,
    "temperature": 1.0, "lr": 1e-6, "clip_low": 0.2, "clip_high": 0.2, "stop_at_eos": False,
    "skip_idle_rows": False,
}  # fmt: skip
REAL = {  # rlvr/recipes/rl/smollm2-grpo.yaml's step
    "data": "words", "prompts": 8, "n": 8, "max_new_tokens": 128, "micro_batch_size": 8, "steps": 3,
    "temperature": 0.7, "lr": 2e-5, "clip_low": 0.2, "clip_high": 0.28, "stop_at_eos": True,
    "skip_idle_rows": True,
}  # fmt: skip


class IgnoreEos:
    """The trainer's engine with `ignore_eos` set: every sequence runs to max_new_tokens (equal work)."""

    def __init__(self, engine: RolloutEngine) -> None:
        self.engine = engine

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        return self.engine.generate(prompts, dataclasses.replace(params, ignore_eos=True))


def rlvr_trainer(args: argparse.Namespace, out_dir: str) -> Trainer:
    config = RLConfig(
        model=args.model or "tiny",
        tiny=TinyModel(hidden_size=args.hidden_size, num_layers=args.layers),
        data=args.data,
        eval_data=None,
        template="plain",
        reward="accuracy",
        out_dir=out_dir,
        engine="fast",
        dtype=args.dtype,
        rollout_dtype=args.dtype,  # bf16: the engine samples from a bf16 copy, as the smollm2 recipe does
        stages=[Stage(steps=10**6, max_new_tokens=args.max_new_tokens, n=args.n)],
        prompts_per_step=args.prompts,
        temperature=args.temperature,
        micro_batch_size=args.micro_batch_size,
        advantage="grpo",
        loss_agg="token-mean",
        clip_low=args.clip_low,
        clip_high=args.clip_high,
        dual_clip=None,  # TRL has no dual clip (it never triggers on-policy anyway: the ratio is 1)
        kl_coef=0.0,
        skip_idle_rows=args.skip_idle_rows,  # see the docstring
        lr=args.lr,
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


def prompt_indices(size: int, seed: int, count: int) -> list[int]:
    """The first `count` problems rlvr's Trainer draws (its seeded epoch order, no difficulty skipping)."""
    out: list[int] = []
    epoch = 0
    while len(out) < count:
        out += epoch_order(size, seed, epoch)[: count - len(out)]
        epoch += 1
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    """The flags; those left unset take the workload's defaults (TINY, or REAL with --model)."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add = parser.add_argument
    add("--model", help="a registered name or checkpoint directory (default: the tiny random model)")
    add("--dtype", choices=["float32", "bfloat16"], default="float32", help="compute dtype, both sides")
    add("--prompts", type=int, help="prompts per step (tiny 16, --model 8)")
    add("--n", type=int, help="responses per prompt (group size; 8)")
    add("--max-new-tokens", type=int, help="tiny 64, --model 128")
    add("--steps", type=int, help="timed optimizer steps per side, alternating (tiny 8, --model 3)")
    add("--warmup", type=int, default=1, help="untimed steps per side first")
    add("--micro-batch-size", type=int, help="sequences per forward/backward (tiny 16, --model 8)")
    add("--temperature", type=float, help="tiny 1.0, --model 0.7")
    add("--lr", type=float, help="tiny 1e-6, --model 2e-5")
    add("--hidden-size", type=int, default=64, help="tiny Qwen2's width")
    add("--layers", type=int, default=2, help="tiny Qwen2's depth")
    bool_flag = argparse.BooleanOptionalAction
    add("--stop-at-eos", action=bool_flag, help="sequences end at eos (tiny: off, equal work; --model: on)")
    add("--skip-idle-rows", action=bool_flag, help="rlvr skips zero-advantage rows (tiny: off; --model: on)")
    add("--threads", type=int, default=1, help="torch CPU threads (0: torch's default; >1 shared: noise)")
    add("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)
    for key, value in (REAL if args.model else TINY).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
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
        trl_side, trl_figures = trl_trainer(
            args, model, tokenizer, (prompts, answers), rlvr_side.final_form, f"{tmp}/trl"
        )

        rlvr_runs: list[dict[str, Any]] = []
        trl_seconds: list[float] = []
        callback = alternate(rlvr_side, stage, rlvr_runs, trl_seconds)
        trl_side.add_callback(callback)
        trl_side.remove_callback(PrinterCallback)  # it prints the run's final metrics to stdout
        trl_side.train()
        assert rlvr_side.consumed == total * args.prompts, "rlvr drew other prompts than TRL"
    return rlvr_runs, trl_seconds, trl_figures, sum(p.numel() for p in rlvr_side.model.parameters())


def rlvr_phases(runs: list[dict[str, Any]]) -> dict[str, list[float]]:
    """rlvr's per-step figures by name (an update that did not run is 0 s)."""
    return {
        "seconds": [r["time/step"] for r in runs],
        "tokens": [r["tokens"] for r in runs],
        "correct": [r["train/accuracy"] for r in runs],
        # groups scored all-equal: their rows' advantage is 0 (what skip_idle_rows skips)
        "groups_idle": [r["train/all_correct"] + r["train/all_wrong"] for r in runs],
        **{f"{p}_s": [r.get(f"time/{p}", 0.0) for r in runs] for p in PHASES},
    }


def trl_phases(seconds: list[float], figures: dict[str, list[float]]) -> dict[str, list[float]]:
    """TRL's per-step figures by name: logprob is generate-and-score less generation and reward, update the rest."""
    rows = zip(seconds, figures["prepare_s"], figures["generate_s"], figures["reward_s"], strict=True)
    return {
        "seconds": seconds,
        "tokens": figures["tokens"],
        "correct": figures["correct"],
        "generate_s": figures["generate_s"],
        "reward_s": figures["reward_s"],
        "logprob_s": [prep - gen - rew for _, prep, gen, rew in rows],
        "update_s": [s - prep for s, prep in zip(seconds, figures["prepare_s"], strict=True)],
    }


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
    trl_figures = {k: v[w:total] for k, v in trl_figures.items()}
    rlvr = rlvr_phases(rlvr_runs[w:])
    trl_ = trl_phases(trl_seconds[w:], trl_figures)
    paired = [t / r for t, r in zip(trl_["seconds"], rlvr["seconds"], strict=True)]
    tiny = f"tiny qwen2 (hidden {args.hidden_size}, {args.layers} layers)"
    summary: dict[str, Any] = {
        "device": "cpu",
        "model": args.model or tiny,
        "data": args.data,
        "parameters": parameters,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "prompts": args.prompts,
        "n": args.n,
        "sequences": args.prompts * args.n,
        "max_new_tokens": args.max_new_tokens,
        "stop_at_eos": args.stop_at_eos,
        "skip_idle_rows": args.skip_idle_rows,
        "temperature": args.temperature,
        "lr": args.lr,
        "micro_batch_size": args.micro_batch_size,
        "steps": args.steps,
        "warmup": args.warmup,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "trl": trl.__version__,
        },
        "sides": {"rlvr": side(rlvr), "trl": side(trl_)},
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
        f"{s['model']} on cpu ({s['threads']} threads, {s['dtype']}): {s['prompts']} prompts x n={s['n']} = "
        f"{s['sequences']} sequences x {s['max_new_tokens']} new tokens"
        f"{' (stop at eos)' if s['stop_at_eos'] else ''}, micro-batch {s['micro_batch_size']}, rlvr skips idle "
        f"rows: {'yes' if s['skip_idle_rows'] else 'no'}; median of {s['steps']} steps each after {s['warmup']} "
        "warm-up, alternating"
    )
    columns = ("s/step", "min", "max", "tokens", "correct", "generate", "reward", "logprob", "update")
    print(f"{'side':6}" + "".join(f"{c:>9}" for c in columns))
    for name, r in s["sides"].items():
        keys = ("seconds", "seconds_min", "seconds_max", "tokens", "correct", *(f"{p}_s" for p in PHASES))
        print(f"{name:6}" + "".join(f"{r[k]:9.0f}" if k == "tokens" else f"{r[k]:9.3f}" for k in keys))
    idle = s["sides"]["rlvr"]["groups_idle"]
    done = "skipped by rlvr, computed by TRL" if s["skip_idle_rows"] else "computed by both"
    print(f"groups scored all-equal (advantage 0) on rlvr's side: {idle:.0%} median, {done}")
    print(
        f"trl / rlvr: {s['speedup']:.2f}x per step (median of paired steps; {s['speedup_min']:.2f}-"
        f"{s['speedup_max']:.2f}x); target >= {TARGET:.0f}x: {'met' if s['meets_target'] else 'NOT met'}"
    )


def side(figures: dict[str, list[float]]) -> dict[str, float]:
    """Medians over the timed steps, each figure on its own (the phases need not sum to the median step);
    `rest_s` is everything but generation and reward."""
    seconds = figures["seconds"]
    out = {key: statistics.median(values) for key, values in figures.items()}
    out["seconds_min"], out["seconds_max"] = min(seconds), max(seconds)
    out["rest_s"] = statistics.median(
        s - g - r for s, g, r in zip(seconds, figures["generate_s"], figures["reward_s"], strict=True)
    )
    return out


if __name__ == "__main__":
    sys.exit(main())
