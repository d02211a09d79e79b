"""`rlvr sample MODEL DATA --n K`: K graded samples per problem, turned into pass rates and verified SFT data.

Two uses from the recipes: an offline difficulty filter (Light-R1 kept problems a 7B model solved 0.2-0.625 of
the time) reads `OUT/pass_rates.jsonl`, and rejection sampling (R1's second SFT stage) trains on the verified
responses in `OUT/sft.jsonl`. Sampling and grading are `rlvr.eval.evaluate`'s: every graded sample goes to
`OUT/samples.jsonl` chunk by chunk, so a killed run resumes, and a finished one rerun with other --keep /
--max-per-problem / --dedup options only rewrites the two outputs (the model is not even loaded).

Ids. `pass_rates.jsonl` ids are `SOURCE:ID`, the ids `rlvr data prepare` gives a source's problems (the
registered name, or the file's stem: `sources: [{path: x.jsonl}]` makes `x:ID`), so its `difficulty` step finds
them; --id-prefix overrides SOURCE (a source with its own `name:`), and --id-prefix '' writes the bare ids.

What goes to sft.jsonl: responses the verifier grades correct that ended on their own (a correct answer followed
by a cut-off ramble teaches the model not to stop), as `{id, problem, response, answer}`, what `rlvr sft
data=OUT/sft.jsonl` reads; train with the same template the samples were drawn with. A response begins with the
template's prefix (`<think>\n`), as it was graded; SFT with that template takes the prefix as prompt, not target.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from rlvr.data.schema import Problem
from rlvr.eval.accuracy import sampling_words
from rlvr.eval.evaluate import EvalSettings, Grader, LazyEngine, sample_and_grade, select, settings_file
from rlvr.eval.metrics import SampleRecord
from rlvr.eval.run import (
    add_engine_arguments,
    default_label,
    final_forms,
    grading_pools,
    load_benchmark,
    make_engine,
    settings_of,
    source_name,
)
from rlvr.io import atomic_write
from rlvr.rollout.types import RolloutEngine

HELP = "sample K responses per problem and grade them: pass rates (difficulty filter) and verified SFT data"
Keep = Literal["all", "shortest", "random"]
EPILOG = """\
Writes OUT/samples.jsonl (every graded sample; resumable), OUT/pass_rates.jsonl ({id, pass_rate, n, correct} per
problem: the input of `rlvr data prepare`'s difficulty step) and OUT/sft.jsonl ({id, problem, response, answer}
per kept response: `rlvr sft data=OUT/sft.jsonl template=SAME_TEMPLATE`).

Kept responses: the correct ones that stopped on their own, per problem in sample order (--keep all), shortest
first (--keep shortest) or shuffled with --seed (--keep random); --dedup drops repeats of the same text;
--max-per-problem caps each problem's share.

examples:
  rlvr sample runs/sft-tiny-arith/final arith --n 8 --template plain --max-new-tokens 64 --limit 2000
  rlvr sample models/R1-Distill-7B runs/data/train.jsonl --n 8 --engine vllm --keep shortest --max-per-problem 1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from rlvr.rewards.grade_file import add_pool_arguments

    parser.epilog = EPILOG
    parser.add_argument(
        "model", metavar="MODEL", help="a checkpoint directory, .gguf file, registered name or hub id"
    )
    parser.add_argument("data", metavar="DATA", help="a registered set or a problem file")
    parser.add_argument("--n", type=int, default=8, help="samples per problem (default 8)")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0, help="0: off")
    parser.add_argument("--max-new-tokens", type=int, default=EvalSettings().max_new_tokens)
    parser.add_argument(
        "--template",
        default=EvalSettings().template,
        help="a template's name, or an inline YAML mapping (as in `rlvr eval --help`)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (and --keep random's)")
    parser.add_argument("--limit", type=int, default=None, help="only the first LIMIT problems")
    parser.add_argument(
        "--chunk-tokens",
        type=int,
        default=0,
        help="tokens per engine call (default: 4K on a CPU, 16M on a GPU)",
    )
    add_engine_arguments(parser)
    parser.add_argument(
        "--out", type=Path, default=None, help="output directory (default: runs/sample/SOURCE)"
    )
    parser.add_argument(
        "--keep", choices=("all", "shortest", "random"), default="all", help="order of kept responses"
    )
    parser.add_argument(
        "--max-per-problem", type=int, default=None, help="kept responses per problem (default: all)"
    )
    parser.add_argument("--dedup", action="store_true", help="keep one of identical responses")
    parser.add_argument(
        "--id-prefix", default=None, help="SOURCE in the ids SOURCE:ID (default: DATA's name)"
    )
    parser.add_argument("--datasets", default=None, help="a YAML of your own registered sets")
    add_pool_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the figures as one JSON object only")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from rlvr.models.checkpoint import load_tokenizer
    from rlvr.models.registry import resolve

    settings = settings_of(args)
    source = source_name(args.data)
    out = args.out if args.out is not None else Path("runs/sample") / source
    problems = load_benchmark(args.data, args.datasets)
    forms = final_forms([args.data], args.datasets)
    label = default_label(args.model)
    args.model = str(resolve(args.model).resolve())  # once: a hub id is not looked up again by each loader
    identity = {"model": args.model, "engine": args.engine, "data": args.data, "final_form": forms[source]}
    tokenizer = load_tokenizer(args.model)
    engine = LazyEngine(lambda: make_engine(args, tokenizer))  # loaded only if something is left to sample
    with grading_pools(forms, args.workers, args.timeout) as graders:
        figures = sample_data(
            problems, settings, out, tokenizer, engine, identity=identity,
            id_prefix=source if args.id_prefix is None else args.id_prefix, keep=args.keep,
            max_per_problem=args.max_per_problem, dedup=args.dedup, grader=graders[source],
            progress=None if args.no_progress or args.json else label,
        )  # fmt: skip
    if args.json:
        print(json.dumps(figures))
        return 0
    print(
        f"{figures['problems']} problems x {settings.n} at {sampling_words(settings.temperature, settings.top_p)}: "
        f"mean pass rate {100 * figures['mean_pass_rate']:.1f}%, "
        f"{figures['unsolved']} never solved, {figures['always_solved']} always solved"
    )
    print(
        f"sft: {figures['sft_records']} responses kept ({figures['correct']} correct, {figures['cut_off']} of "
        f"them cut off, {figures['duplicates']} duplicates, {figures['over_cap']} over the cap)"
    )
    print(f"wrote {out}/pass_rates.jsonl and {out}/sft.jsonl (ids {figures['id_example']})")
    return 0


def sample_data(
    problems: Sequence[Problem],
    settings: EvalSettings,
    out: Path,
    tokenizer: Any,
    engine: RolloutEngine,
    *,
    identity: dict[str, Any] | None = None,
    id_prefix: str = "",
    keep: Keep = "all",
    max_per_problem: int | None = None,
    dedup: bool = False,
    grader: Grader | None = None,
    progress: str | None = None,
) -> dict[str, Any]:
    """Sample (resuming OUT/samples.jsonl), then write pass_rates.jsonl and sft.jsonl; returns the figures.

    identity: what else must match for a rerun to resume (model, engine, data), kept in sample_config.json."""
    if max_per_problem is not None and max_per_problem < 1:
        raise ValueError(f"max_per_problem must be at least 1, got {max_per_problem}")
    settings_file(out / "sample_config.json", {**(identity or {}), **settings.identity()})
    records = sample_and_grade(
        problems, settings, tokenizer, engine, out / "samples.jsonl", grader=grader, progress=progress
    )
    by_problem: dict[str, list[SampleRecord]] = {}
    for r in records:
        by_problem.setdefault(r.problem_id, []).append(r)
    rates: list[dict[str, Any]] = []
    sft: list[dict[str, str]] = []
    counts = {"correct": 0, "cut_off": 0, "duplicates": 0, "over_cap": 0}
    for p in select(problems, settings):
        group = by_problem[p.id]
        correct = sum(r.correct for r in group)
        pid = f"{id_prefix}:{p.id}" if id_prefix else p.id
        rates.append({"id": pid, "pass_rate": correct / len(group), "n": len(group), "correct": correct})
        kept = select_responses(
            group, keep=keep, max_per_problem=max_per_problem, dedup=dedup, seed=settings.seed, counts=counts
        )
        sft += [
            {"id": pid, "problem": p.problem, "response": r.text.strip(), "answer": p.answer} for r in kept
        ]
    for name, rows in (("pass_rates.jsonl", rates), ("sft.jsonl", sft)):
        with atomic_write(out / name) as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    pass_rates: list[float] = [row["pass_rate"] for row in rates]
    return {
        "problems": len(rates),
        "samples": len(records),
        "mean_pass_rate": sum(pass_rates) / max(1, len(pass_rates)),
        "unsolved": sum(rate == 0 for rate in pass_rates),
        "always_solved": sum(rate == 1 for rate in pass_rates),
        **counts,
        "sft_records": len(sft),
        "id_example": rates[0]["id"] if rates else None,
        "out": str(out),
    }


def select_responses(
    samples: Sequence[SampleRecord],
    *,
    keep: Keep = "all",
    max_per_problem: int | None = None,
    dedup: bool = False,
    seed: int = 0,
    counts: dict[str, int] | None = None,
) -> list[SampleRecord]:
    """One problem's responses for SFT: correct and stopped, deduplicated (same stripped text) if asked, ordered
    by `keep` (sample order; shortest first, ties in sample order; shuffled by (seed, problem)), then capped.
    `counts` (if given) accumulates correct / cut_off / duplicates / over_cap."""
    if keep not in ("all", "shortest", "random"):
        raise ValueError(f"keep must be all, shortest or random, got {keep!r}")
    tally = counts if counts is not None else {}
    correct = [r for r in sorted(samples, key=lambda r: r.sample_index) if r.correct]
    tally["correct"] = tally.get("correct", 0) + len(correct)
    stopped = [r for r in correct if r.finish_reason != "length"]
    tally["cut_off"] = tally.get("cut_off", 0) + len(correct) - len(stopped)
    if keep == "shortest":
        stopped.sort(key=lambda r: r.length)  # stable: ties stay in sample order
    elif keep == "random" and stopped:
        random.Random(f"{seed}:{stopped[0].problem_id}").shuffle(stopped)
    unique: list[SampleRecord] = []
    seen: set[str] = set()
    for r in stopped:
        if dedup and r.text.strip() in seen:
            continue
        seen.add(r.text.strip())
        unique.append(r)
    tally["duplicates"] = tally.get("duplicates", 0) + len(stopped) - len(unique)
    capped = unique[:max_per_problem]
    tally["over_cap"] = tally.get("over_cap", 0) + len(unique) - len(capped)
    return capped
