"""`rlvr eval MODEL --benchmarks aime24,math500`: the recipes' evaluation protocol, resumable, with the table.

For each benchmark, n samples per problem (temperature 0.6, top_p 0.95, 16 samples and 32K new tokens by default:
REFERENCE §1) are graded by rlvr's verifier and appended to `OUT/<benchmark>.samples.jsonl` chunk by chunk
(`rlvr.eval.evaluate`); run the same command again after a kill and it carries on where it stopped. The settings
that decide the samples sit in `OUT/eval_config.json`, and a rerun with other settings is refused. At the end:
`OUT/results.json` (every metric of `rlvr.eval.metrics.summarize`, per benchmark) and `OUT/results.md` (the table
the recipes print: a row per model, pass@1 per benchmark, Avg; then the details), printed too.
`rlvr eval --compare RUN_A RUN_B` puts two finished runs side by side.

The library entry is `run_benchmarks` (the RL trainer and the demo call it with their live model's engine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from rlvr.data import registry
from rlvr.data.schema import Problem
from rlvr.eval.accuracy import sampling_words
from rlvr.eval.evaluate import EvalSettings, Grader, InProcess, LazyEngine, sample_and_grade, settings_file
from rlvr.eval.metrics import BenchmarkSummary, comparison_table, markdown_table, summarize
from rlvr.io import atomic_write
from rlvr.rollout.types import RolloutEngine

HELP = "evaluate a model on benchmarks: pass@1, pass@k, maj@k with intervals (resumable)"
DEFAULTS = EvalSettings()
EPILOG = f"""\
Defaults follow the public recipes' protocol: --n {DEFAULTS.n}, --temperature {DEFAULTS.temperature}, --top-p \
{DEFAULTS.top_p}, --max-new-tokens {DEFAULTS.max_new_tokens} (clipped to the model's context), --template \
{DEFAULTS.template} (DeepScaleR's "Let's think step by step ... \\boxed{{}}" in the model's chat template).
A benchmark is a registered set (`rlvr data ls`) or a problem file, named by its file stem.
--template takes a name (r1_zero, deepscaler, qwen_math, simplerl, plain) or an inline YAML mapping:
  --template '{{system: "You are a careful solver.", user: "Q: {{problem}}", prefix: "<think>\\n"}}'
(the prompt ends with the prefix; samples are stored and graded as prefix + completion).

Metrics: pass@1 = mean correctness over all samples; pass@k (k = 2, 4, ... n) the unbiased estimator;
maj@n (cons@n) the majority vote of a problem's n answers. Intervals: percentile bootstrap over problems
(--bootstrap resamples, seeded with --seed).

Chunks and resuming: problems go to the engine in chunks of at most --chunk-tokens tokens (problems x n x
(prompt + max new tokens); default 4K on a CPU, 16M on a GPU), and each chunk's samples are saved as it ends.
Rerun the same command after a kill, or with a smaller --limit, and the saved problems are reused: only the
missing ones are sampled (chunk c's seed derives from --seed and its first problem, so the samples are the ones an
uninterrupted run draws). A rerun that changes what a sample is (model, engine, n, sampling, max new tokens,
template, seed) is refused: use another --out.

examples:
  rlvr eval runs/sft-tiny-arith/final --benchmarks arith_test --template plain --max-new-tokens 64 --n 4 \\
      --temperature 1.0 --top-p 1.0     # the held-out protocol of `rlvr sft tiny-arith` and the demo
  rlvr eval models/DeepScaleR-1.5B --benchmarks aime24,amc23,math500 --engine vllm --out runs/eval/dsr
  rlvr eval --compare runs/eval/base runs/eval/dsr
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.rewards.grade_file import add_pool_arguments

    parser.epilog = EPILOG
    parser.add_argument(
        "model",
        nargs="?",
        metavar="MODEL",
        help="a checkpoint directory, .gguf file, registered name or hub id",
    )
    parser.add_argument(
        "--benchmarks",
        default="aime24,math500",
        help="comma-separated sets or files (default: aime24,math500)",
    )
    parser.add_argument("--n", type=int, default=DEFAULTS.n, help="samples per problem")
    parser.add_argument("--temperature", type=float, default=DEFAULTS.temperature)
    parser.add_argument("--top-p", type=float, default=DEFAULTS.top_p)
    parser.add_argument("--top-k", type=int, default=DEFAULTS.top_k, help="0: off")
    parser.add_argument("--max-new-tokens", type=int, default=DEFAULTS.max_new_tokens)
    parser.add_argument(
        "--template",
        default=DEFAULTS.template,
        help="a template's name, or an inline YAML mapping (see below)",
    )
    parser.add_argument("--seed", type=int, default=DEFAULTS.seed, help="sampling and bootstrap seed")
    parser.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems of each set")
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        default=0,
        help="tokens per engine call (default: 4K on a CPU, 16M on a GPU)",
    )
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: no intervals)")
    add_engine_arguments(parser)
    parser.add_argument("--out", type=Path, default=None, help="output directory (default: runs/eval/NAME)")
    parser.add_argument("--name", default=None, help="the model's row label (default: from MODEL's path)")
    parser.add_argument("--datasets", default=None, help="a YAML of your own registered sets")
    add_pool_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the results as one JSON object only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--compare",
        nargs=2,
        metavar=("RUN_A", "RUN_B"),
        type=Path,
        help="print two finished runs side by side",
    )
    parser.add_argument("--metric", default="pass@1", help="the metric of the tables (default pass@1)")


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """--engine, --dtype, --device, --gpu-memory-utilization: for every command that samples from a checkpoint."""
    parser.add_argument("--engine", choices=("fast", "hf", "vllm"), default="fast", help="rollout backend")
    parser.add_argument("--dtype", default="auto", help="auto (the checkpoint's), float32, bfloat16, float16")
    parser.add_argument("--device", default="auto", help="auto: the GPU when there is one, else cpu")
    parser.add_argument("--gpu-memory-utilization", type=float, default=0.9, help="vLLM's share of the GPU")
    parser.add_argument(
        "--max-batch",
        type=int,
        default=None,
        help="fast engine: sequences decoded at once (default: a chunk)",
    )


def run(args: argparse.Namespace) -> int:
    if args.compare is not None:
        return _compare(args)
    if args.model is None:
        raise ValueError("give a MODEL (or --compare RUN_A RUN_B)")
    from rlvr.models.checkpoint import load_tokenizer
    from rlvr.models.registry import resolve

    settings = settings_of(args)
    label = args.name or default_label(args.model)
    out = args.out if args.out is not None else Path("runs/eval") / label.replace("/", "-")
    names = [b.strip() for b in args.benchmarks.split(",") if b.strip()]
    benchmarks = {source_name(b): load_benchmark(b, args.datasets) for b in names}
    forms = final_forms(names, args.datasets)
    args.model = str(resolve(args.model).resolve())  # once: a hub id is not looked up again by each loader
    tokenizer = load_tokenizer(args.model)
    engine = LazyEngine(lambda: make_engine(args, tokenizer))  # loaded only if something is left to sample
    with grading_pools(forms, args.workers, args.timeout) as graders:
        summaries = run_benchmarks(
            benchmarks, settings, out, tokenizer, engine,
            identity={"model": args.model, "engine": args.engine, "final_form": forms}, label=label,
            graders=graders, bootstrap=args.bootstrap, progress=not (args.no_progress or args.json),
        )  # fmt: skip
    if args.json:
        print(json.dumps(_results(out)))
        return 0
    print(results_markdown(label, summaries, args.metric, describe(settings)))
    print(f"samples and results in {out}/")
    return 0


def run_benchmarks(
    benchmarks: Mapping[str, Sequence[Problem]],
    settings: EvalSettings,
    out: Path,
    tokenizer: Any,
    engine: RolloutEngine,
    *,
    identity: Mapping[str, Any] | None = None,
    label: str = "model",
    graders: Mapping[str, Grader] | None = None,
    bootstrap: int = 1000,
    progress: bool = False,
) -> dict[str, BenchmarkSummary]:
    """Evaluate every benchmark into `out` (resuming what is there) and write results.json and results.md.

    identity: what else must match for a rerun to resume (the model, the engine): stored in eval_config.json
    with the settings. results.json keeps the benchmarks of earlier runs into `out` that this one did not name.
    graders: each benchmark's (default: `verify` in this process, by its registered rule).
    """
    settings_file(out / "eval_config.json", {**(identity or {}), **settings.identity()})
    summaries = {}
    for name, problems in benchmarks.items():
        grader = graders[name] if graders is not None else InProcess(registry.final_form(name))
        records = sample_and_grade(
            problems, settings, tokenizer, engine, out / f"{name}.samples.jsonl",
            grader=grader, progress=name if progress else None,
        )  # fmt: skip
        summaries[name] = summarize(records, bootstrap=bootstrap, seed=settings.seed)
    earlier = read_results(out)[1] if (out / "results.json").exists() else {}
    merged = {**earlier, **summaries}
    with atomic_write(out / "results.json") as f:
        results = {
            "model": label,
            "settings": {**(identity or {}), **asdict(settings)},
            "benchmarks": {name: s.to_dict() for name, s in merged.items()},
        }
        f.write(json.dumps(results, indent=2) + "\n")
    with atomic_write(out / "results.md") as f:
        f.write(results_markdown(label, merged, sampling=describe(settings)))
    return merged


def describe(settings: EvalSettings) -> str:
    """How the samples were drawn, the line under every table: `n=16 at T=0.6 top_p=0.95, at most 32768 new
    tokens, template deepscaler`."""
    from rlvr.data.templates import resolve

    top_k = f" top_k={settings.top_k}" if settings.top_k else ""
    return (
        f"n={settings.n} at {sampling_words(settings.temperature, settings.top_p)}{top_k}, at most "
        f"{settings.max_new_tokens} new tokens, template {resolve(settings.template).label}"
    )


def results_markdown(
    label: str, summaries: Mapping[str, BenchmarkSummary], metric: str = "pass@1", sampling: str = ""
) -> str:
    """The recipes' table (a row for the model, `metric` per benchmark in percent, Avg), the `sampling` line
    (`describe`), then one row of details per benchmark: sizes, pass@1 with its interval, the largest pass@k,
    maj@n, mean lengths, truncation. With one sample per problem pass@1, pass@1 and maj@1 are one number: the
    details show it once, as `accuracy`."""
    single = all(s.samples_per_problem == 1 for s in summaries.values())
    ks = {name: 1 << (s.samples_per_problem.bit_length() - 1) for name, s in summaries.items()}  # 2^i <= n
    ns = {s.samples_per_problem for s in summaries.values()}
    k_head = str(next(iter(ks.values()))) if len(set(ks.values())) == 1 else "k"
    n_head = str(next(iter(ns))) if len(ns) == 1 else "n"
    lines = [markdown_table({label: summaries}, metric=metric)]
    if sampling:
        lines.append(f"Sampling: {sampling}.\n")
    heads = ["accuracy"] if single else ["pass@1", f"pass@{k_head}", f"maj@{n_head}"]
    lines.append(_row(["Benchmark", "problems", "n", *heads, "len correct", "len wrong", "truncated"]))
    lines.append(_row(["---", *["---:"] * (len(heads) + 5)]))
    for name, s in summaries.items():
        n = s.samples_per_problem
        lo, hi = s.intervals.get("pass@1", (None, None))
        ci = f" [{100 * lo:.1f}, {100 * hi:.1f}]" if lo is not None and hi is not None else ""
        top = s.metrics.get(f"pass@{ks[name]}", s.pass_at_1)
        scores = [f"{100 * s.pass_at_1:.1f}{ci}"]
        if not single:
            scores += [f"{100 * top:.1f}", f"{100 * s.metrics[f'maj@{n}']:.1f}"]
        cells = [
            name, str(s.problems), str(n), *scores, _tokens(s.mean_length_correct),
            _tokens(s.mean_length_incorrect), f"{100 * s.truncation_rate:.1f}%",
        ]  # fmt: skip
        lines.append(_row(cells))
    return "\n".join(lines) + "\n"


def read_results(run_dir: Path) -> tuple[str, dict[str, BenchmarkSummary]]:
    """The model label and per-benchmark summaries of a finished run directory (its results.json)."""
    results = _results(run_dir)
    return results["model"], {name: summary_from_dict(d) for name, d in results["benchmarks"].items()}


def summary_from_dict(d: Mapping[str, Any]) -> BenchmarkSummary:
    """The inverse of `BenchmarkSummary.to_dict`: its metrics are the keys that are not named fields."""
    fields = set(BenchmarkSummary.__dataclass_fields__) | {"intervals"}
    return BenchmarkSummary(
        problems=d["problems"],
        samples=d["samples"],
        samples_per_problem=d["samples_per_problem"],
        metrics={k: float(v) for k, v in d.items() if k not in fields},
        intervals={k: (float(v[0]), float(v[1])) for k, v in d.get("intervals", {}).items()},
        mean_length_correct=d["mean_length_correct"],
        mean_length_incorrect=d["mean_length_incorrect"],
        truncation_rate=d["truncation_rate"],
        bootstrap=d["bootstrap"],
        seed=d["seed"],
        confidence=d["confidence"],
    )


def final_forms(names: Sequence[str], datasets: str | None = None) -> dict[str, bool]:
    """Each set's grading rule by its name (`source_name`): `verify(final_form=...)` as the registry (or the
    `datasets` YAML) declares it."""
    user = registry.load_user_datasets(datasets) if datasets else None
    return {source_name(name): registry.final_form(name, user) for name in names}


@contextlib.contextmanager
def grading_pools(
    forms: Mapping[str, bool], workers: int | None, timeout_s: float
) -> Iterator[dict[str, Grader]]:
    """A worker pool per grading rule the sets need (one or two), as each set's grader."""
    from rlvr.rewards.pool import pool_for

    with contextlib.ExitStack() as stack:
        pools = {
            rule: stack.enter_context(pool_for(rule, workers, timeout_s)) for rule in set(forms.values())
        }
        yield {name: pools[rule] for name, rule in forms.items()}


def load_benchmark(name: str, datasets: str | None = None) -> list[Problem]:
    """A registered (or user-registered, from the `datasets` YAML) set by name, or a problem file."""
    return registry.load_problems(name, registry.load_user_datasets(datasets) if datasets else None)


def settings_of(args: argparse.Namespace) -> EvalSettings:
    """The sampling settings the command line gives (`rlvr eval` and `rlvr sample`), with the token budget of
    the device the engine will run on."""
    from rlvr.data.templates import parse

    settings = EvalSettings(
        n=args.n, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k,
        max_new_tokens=args.max_new_tokens, template=parse(args.template), seed=args.seed, limit=args.limit,
        chunk_tokens=args.chunk_tokens,
    )  # fmt: skip
    return settings.on_device(args.engine == "vllm" or device_of(args) != "cpu")


def device_of(args: argparse.Namespace) -> str:
    """--device, with auto resolved: the GPU when there is one."""
    if args.device != "auto":
        return str(args.device)
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def make_engine(args: argparse.Namespace, tokenizer: Any) -> Any:
    """The rollout engine --engine names, over the checkpoint args.model (loaded here, when first needed)."""
    if args.engine == "vllm":
        from rlvr.rollout.vllm import VLLMEngine

        return VLLMEngine(
            args.model, gpu_memory_utilization=args.gpu_memory_utilization, dtype=args.dtype, seed=args.seed
        )
    from rlvr.models.checkpoint import load_model
    from rlvr.rollout import local_engine

    model = load_model(args.model, dtype=args.dtype, device=device_of(args)).eval()
    settings = {"max_batch": args.max_batch} if args.engine == "fast" else {}
    return local_engine(args.engine, model, tokenizer, **settings)


def default_label(model: str | Path) -> str:
    """A checkpoint's name for tables: its directory, with the parent's in front when the name alone says
    little (`runs/sft/final` -> `sft/final`, `runs/rl/step-200` -> `rl/step-200`)."""
    path = Path(model).resolve()
    generic = path.name == "final" or path.name.startswith(("step", "checkpoint"))
    return f"{path.parent.name}/{path.name}" if generic and path.parent.name else path.name


# --- helpers -----------------------------------------------------------------------------------------------


def _compare(args: argparse.Namespace) -> int:
    (label_a, a), (label_b, b) = (read_results(Path(d)) for d in args.compare)
    if args.json:
        print(json.dumps({str(d): _results(Path(d)) for d in args.compare}))
        return 0
    names = (label_a, label_b) if label_a != label_b else tuple(str(d) for d in args.compare)
    print(f"{args.metric}, percent (A = {args.compare[0]}, B = {args.compare[1]}):\n")
    print(comparison_table(a, b, names=(names[0], names[1]), metric=args.metric))
    for side, run_dir in zip("AB", args.compare, strict=True):
        stored = _results(Path(run_dir)).get("settings", {})
        try:
            print(f"{side}: {describe(stored_settings(stored))}")
        except (TypeError, ValueError):  # an older rlvr's results: its settings as stored
            print(f"{side}: {json.dumps(stored)}")
    return 0


def stored_settings(stored: Mapping[str, Any]) -> EvalSettings:
    """The `EvalSettings` of a results.json's `settings` (the keys that are fields; an inline template back
    from its mapping)."""
    from rlvr.config import build

    fields = {k: v for k, v in stored.items() if k in EvalSettings.__dataclass_fields__}
    return build(EvalSettings, fields, "results.json settings")


def _results(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no results (is {run_dir} an `rlvr eval` output directory?)")
    results: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return results


def source_name(data: str) -> str:
    """A set's name: a registered set's own, a file's stem (as `rlvr data prepare` names its sources)."""
    return Path(data).stem if Path(data).exists() else data


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _tokens(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"
