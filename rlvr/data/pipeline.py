"""`rlvr data prepare CONFIG.yaml`: load sources, run named curation steps, write the set and a report.

A config names its sources (registered sets or a user's files) and an ordered list of optional steps:

    normalise       take the gold from the solution's last \\boxed{} when the answer is missing; no answer: dropped
    gradability     drop golds rlvr's verifier cannot parse (DeepScaleR dropped what sympy could not)
    exact_dedup     drop problems whose normalised text was seen before
    near_dedup      drop near-duplicates (all-MiniLM-L6-v2 cosine > threshold; MinHash without the extra)
    decontaminate   drop problems sharing an n-gram with, or equal ignoring digits to, any eval problem
    difficulty      keep problems whose pass rate (from `rlvr sample`) lies in [lo, hi] (Light-R1: 0.2-0.625)

Every step reports how many records came in, how many went out, and examples of what it removed and why; the
report lands in `report.md` beside the output. Nothing is written unless every step succeeded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from rlvr.data import registry
from rlvr.data.readers import read_problems, write_problems
from rlvr.data.schema import Problem
from rlvr.io import atomic_write, read_jsonl
from rlvr.rewards.extract import find_boxes
from rlvr.rewards.math import is_gradable

EXAMPLES = 5  # removed records shown per step in the report


@dataclass
class PrepareConfig:
    sources: list[str | dict[str, Any]]  # registered names, or {name, path, fields, format} for a user's file
    output: str  # .jsonl, .jsonl.gz or .parquet; report.md is written beside it
    steps: list[str | dict[str, Any]] = field(default_factory=list)  # names, or {name: {options}}
    datasets: str | None = None  # a YAML of user-registered sets (see registry.load_user_datasets)
    eval_sets: list[str] = field(default_factory=lambda: list(registry.EVAL_SETS))  # for decontaminate


@dataclass
class StepReport:
    name: str
    count_in: int
    count_out: int
    seconds: float
    removed: list[tuple[str, str]]  # (record id, why), all of them
    note: str = ""  # e.g. which near-dedup method ran

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "in": self.count_in, "out": self.count_out, "removed": self.count_in - self.count_out,
            "seconds": round(self.seconds, 2), "note": self.note,
            "examples": [{"id": i, "why": why} for i, why in self.removed[:EXAMPLES]],
        }  # fmt: skip


Step = Callable[[list[Problem], dict[str, Any], "Context"], tuple[list[Problem], list[tuple[str, str]], str]]


@dataclass
class Context:
    config: PrepareConfig
    user_specs: dict[str, registry.DatasetSpec]
    base_dir: Path  # relative paths in the config are relative to it

    def eval_problems(self) -> dict[str, list[Problem]]:
        return {name: load(name, self.user_specs) for name in self.config.eval_sets}


def load(name: str, user_specs: dict[str, registry.DatasetSpec] | None = None) -> list[Problem]:
    """The records of a registered (or user-registered) set: read from its local copy, or generated."""
    return registry.load_dataset(name, user_specs)


# -- steps -----------------------------------------------------------------------------------------------------------
def _normalise(
    problems: list[Problem], options: dict[str, Any], ctx: Context
) -> tuple[list[Problem], list[tuple[str, str]], str]:
    kept, removed, filled = [], [], 0
    for p in problems:
        if not p.answer.strip() and p.solution:
            boxes, _ = find_boxes(p.solution)
            if boxes and boxes[-1]:
                p.answer = boxes[-1]
                filled += 1
        p.answer = p.answer.strip()
        if p.answer:
            kept.append(p)
        else:
            removed.append((p.id, "no answer field and no \\boxed{} in the solution"))
    return kept, removed, f"{filled} answers taken from the solution's last \\boxed{{}}"


def _gradability(
    problems: list[Problem], options: dict[str, Any], ctx: Context
) -> tuple[list[Problem], list[tuple[str, str]], str]:
    kept, removed = [], []
    for p in problems:
        if is_gradable(p.answer):
            kept.append(p)
        else:
            removed.append((p.id, f"rlvr's verifier cannot parse the gold {p.answer[:80]!r}"))
    return kept, removed, ""


def _adapt(result: tuple[list[Problem], list[Any]]) -> tuple[list[Problem], list[tuple[str, str]]]:
    kept, removed = result
    return kept, [
        (r.id, f"{r.reason}" + (f" (= {r.other_id})" if getattr(r, "other_id", None) else ""))
        for r in removed
    ]


def _exact_dedup(
    problems: list[Problem], options: dict[str, Any], ctx: Context
) -> tuple[list[Problem], list[tuple[str, str]], str]:
    from rlvr.data.dedup import exact_dedup

    kept, removed = _adapt(exact_dedup(problems))
    return kept, removed, ""


def _near_dedup(
    problems: list[Problem], options: dict[str, Any], ctx: Context
) -> tuple[list[Problem], list[tuple[str, str]], str]:
    from rlvr.data.dedup import near_dedup

    result = near_dedup(problems, **options)
    kept, removed = _adapt((result[0], result[1]))
    method = result[2] if len(result) > 2 else options.get("method", "auto")
    return kept, removed, f"method: {method}"


def _decontaminate(
    problems: list[Problem], options: dict[str, Any], ctx: Context
) -> tuple[list[Problem], list[tuple[str, str]], str]:
    from rlvr.data.decontaminate import exact_ignoring_digits, ngram_contaminated

    evals = ctx.eval_problems()
    n = int(options.get("n", 8))
    kept, by_ngram = _adapt(ngram_contaminated(problems, evals, n=n))
    kept, by_digits = _adapt(exact_ignoring_digits(kept, evals))
    note = f"{n}-gram overlap: {len(by_ngram)}, exact ignoring digits: {len(by_digits)}; against {', '.join(evals)}"
    return kept, by_ngram + by_digits, note


def _difficulty(
    problems: list[Problem], options: dict[str, Any], ctx: Context
) -> tuple[list[Problem], list[tuple[str, str]], str]:
    if "pass_rates" not in options:
        raise ValueError("step difficulty needs `pass_rates:` (the per-problem file `rlvr sample` writes)")
    lo, hi = float(options.get("lo", 0.0)), float(options.get("hi", 1.0))
    path = ctx.base_dir / options["pass_rates"]
    rates: dict[str, float] = {}
    for line_no, row in read_jsonl(path):
        if "id" not in row or not isinstance(row.get("pass_rate"), int | float):
            raise ValueError(f"{path}:{line_no}: expected fields 'id' and a numeric 'pass_rate'")
        rates[str(row["id"])] = float(row["pass_rate"])
    keep_missing = bool(options.get("keep_missing", False))
    kept, removed, missing = [], [], 0
    for p in problems:
        rate = rates.get(p.id)
        if rate is None:
            missing += 1
            (kept.append(p) if keep_missing else removed.append((p.id, "no pass rate in the file")))
        elif lo <= rate <= hi:
            kept.append(p)
        else:
            removed.append((p.id, f"pass rate {rate:.3f} outside [{lo}, {hi}]"))
    return kept, removed, f"{missing} problems had no pass rate ({'kept' if keep_missing else 'dropped'})"


STEPS: dict[str, Step] = {
    "normalise": _normalise,
    "gradability": _gradability,
    "exact_dedup": _exact_dedup,
    "near_dedup": _near_dedup,
    "decontaminate": _decontaminate,
    "difficulty": _difficulty,
}


# -- the run ---------------------------------------------------------------------------------------------------------
def load_config(path: str | Path, overrides: list[str] | None = None) -> PrepareConfig:
    """A config from YAML, then `key=value` overrides of top-level fields (e.g. output=out/train.jsonl)."""
    with open(path, encoding="utf-8") as f:
        raw = yaml.safe_load(f)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a mapping with `sources`, `steps` and `output`")
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"override {item!r} is not key=value")
        raw[key] = yaml.safe_load(value)
    known = set(PrepareConfig.__dataclass_fields__)
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown field(s) {unknown}; known: {sorted(known)}")
    for key in ("sources", "output"):
        if key not in raw:
            raise ValueError(f"{path}: missing field {key!r}")
    for step in raw.get("steps", []):
        name = step if isinstance(step, str) else next(iter(step), None) if isinstance(step, dict) else None
        if name not in STEPS:
            raise ValueError(f"{path}: unknown step {step!r}; steps: {', '.join(STEPS)}")
    return PrepareConfig(**raw)


def _sources(ctx: Context) -> tuple[list[Problem], list[str]]:
    problems: list[Problem] = []
    names: list[str] = []
    for k, source in enumerate(ctx.config.sources, start=1):
        if isinstance(source, str):
            name, records = source, load(source, ctx.user_specs)
        elif isinstance(source, dict) and "path" in source:
            name = source.get("name", Path(source["path"]).stem)
            records = read_problems(
                ctx.base_dir / source["path"], fields=source.get("fields"), format=source.get("format"),
                require_answer=False, source=name,
            )  # fmt: skip
        else:
            raise ValueError(f"sources entry {k}: a registered name or {{path: ..., fields: ...}}")
        for p in records:
            p.id = f"{name}:{p.id}"  # unique across sources
            p.source = p.source or name
        problems += records
        names.append(f"{name} ({len(records)})")
    return problems, names


def prepare(config: PrepareConfig, base_dir: Path = Path(".")) -> dict[str, Any]:
    """Run the pipeline; write the output and report.md; return the report as a dict."""
    user_specs = registry.load_user_datasets(base_dir / config.datasets) if config.datasets else {}
    ctx = Context(config, user_specs, base_dir)
    start = time.perf_counter()
    problems, names = _sources(ctx)
    reports: list[StepReport] = []
    for step in config.steps:
        name, options = (step, {}) if isinstance(step, str) else next(iter(step.items()))
        t = time.perf_counter()
        count_in = len(problems)
        problems, removed, note = STEPS[name](problems, dict(options or {}), ctx)
        reports.append(StepReport(name, count_in, len(problems), time.perf_counter() - t, removed, note))
    output = base_dir / config.output
    write_problems(problems, output)
    report = {
        "sources": names,
        "steps": [r.to_dict() for r in reports],
        "records": len(problems),
        "output": str(output),
        "seconds": round(time.perf_counter() - start, 2),
    }
    with atomic_write(output.parent / "report.md") as f:
        f.write(_markdown(report, reports))
    with atomic_write(output.parent / "removed.jsonl") as f:
        for r in reports:
            for rid, why in r.removed:
                f.write(json.dumps({"step": r.name, "id": rid, "why": why}, ensure_ascii=False) + "\n")
    return report


def _markdown(report: dict[str, Any], reports: list[StepReport]) -> str:
    lines = [
        "# Data preparation report",
        "",
        f"Sources: {', '.join(report['sources'])}. Output: `{report['output']}` ({report['records']} records), "
        f"{report['seconds']} s. Every removed record is listed in `removed.jsonl`.",
        "",
        "| step | in | out | removed | seconds | note |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in reports:
        lines.append(
            f"| {r.name} | {r.count_in} | {r.count_out} | {r.count_in - r.count_out} | {r.seconds:.1f} | {r.note} |"
        )
    for r in reports:
        if r.removed:
            lines += ["", f"## {r.name}: examples of what was removed", ""]
            lines += [f"- `{rid}`: {why}" for rid, why in r.removed[:EXAMPLES]]
    return "\n".join(lines) + "\n"
