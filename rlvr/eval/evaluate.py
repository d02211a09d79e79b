"""Sample n responses per problem, grade them, and keep every graded sample on disk as it is made, resumably.

The loop `rlvr eval` and `rlvr sample` share, and that the RL trainer and the demo call: problems go to the rollout
engine in fixed chunks (`EvalSettings.chunk` problems per `generate` call); each chunk's samples are graded by the
verifier and appended to a JSONL file (one line per sample, see `SampleRecord` for the fields) in one write,
then flushed and fsynced. A killed run is resumed by running it again: the file is read back, a truncated last line
(the kill landed mid-write) is dropped, chunks whose problems all have their n samples are kept, and the rest are
sampled again from their start.

Reproducibility: chunk c's sampling seed is derived from (seed, index of its first problem), and its prompts are
always the same problems, so a resumed run writes the samples an uninterrupted one would (same engine, same
machine: GPU kernels may still differ in the last bits). Per-problem seeds would need one `generate` call per
problem, which starves a GPU of batch; a chunk is the unit of both batching and resumption.

It does not load models or benchmarks (the commands do), and `settings_file` only compares settings: what a
mismatch means is the caller's to say.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from rlvr.data.schema import Problem
from rlvr.data.templates import render
from rlvr.eval.metrics import BenchmarkSummary, SampleRecord, summarize
from rlvr.io import atomic_write
from rlvr.rewards.math import Verdict, verify
from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

CHUNK_ROWS = 512  # sequences per generate call when EvalSettings.chunk is 0 (auto): problems = 512 // n


class Grader(Protocol):
    """Grades (response, gold) pairs, verdicts in input order: `rlvr.rewards.pool.VerifierPool` is one."""

    def grade(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]: ...


class LazyEngine:
    """A `RolloutEngine` built on its first `generate` call: a rerun whose samples are all on disk, or a set of
    benchmarks that share one engine, loads the model once or not at all."""

    def __init__(self, build: Callable[[], RolloutEngine]) -> None:
        self.build = build
        self.engine: RolloutEngine | None = None

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        if self.engine is None:
            self.engine = self.build()
        return self.engine.generate(prompts, params)


class InProcess:
    """The default `Grader`: `verify` in this process, with only its cooperative time limit."""

    def grade(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        return [verify(response, gold) for response, gold in pairs]


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """Everything that decides which samples a run draws. Defaults: the recipes' protocol (REFERENCE §1)."""

    n: int = 16  # samples per problem (DeepScaleR reports 16, R1 64)
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0  # 0: off
    max_new_tokens: int = 32768  # the protocol's 32K; engines clip it to the model's context
    template: str = "deepscaler"  # prompt template (rlvr.data.templates); the tiny world's is "plain"
    seed: int = 0  # chunk c samples with seed * 1_000_003 + (index of its first problem)
    limit: int | None = None  # only the first `limit` problems of each set
    chunk: int = 0  # problems per generate call; 0: max(1, CHUNK_ROWS // n)

    def __post_init__(self) -> None:
        if self.n < 1 or self.chunk < 0 or (self.limit is not None and self.limit < 1):
            raise ValueError(
                f"need n >= 1, chunk >= 0, limit >= 1: got {self.n=} {self.chunk=} {self.limit=}"
            )
        self.sampling(0)  # SamplingParams checks the rest

    @property
    def problems_per_chunk(self) -> int:
        return self.chunk or max(1, CHUNK_ROWS // self.n)

    def sampling(self, first_problem: int) -> SamplingParams:
        """The sampling parameters of the chunk that starts at problem `first_problem`."""
        return SamplingParams(
            n=self.n,
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed * 1_000_003 + first_problem,
        )

    def to_dict(self) -> dict[str, Any]:
        """As stored in a run's settings file, with the chunk size resolved (it decides the samples)."""
        return {**asdict(self), "chunk": self.problems_per_chunk}


def settings_file(path: Path, settings: Mapping[str, Any]) -> None:
    """Write `settings` to `path`, or check that the run already there used the same ones (ValueError if not)."""
    wanted = json.loads(json.dumps(dict(settings)))  # as it reads back: tuples become lists
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        keys = sorted(set(stored) | set(wanted))
        differ = [
            f"{k}={stored.get(k)!r} there, {wanted.get(k)!r} now"
            for k in keys
            if stored.get(k) != wanted.get(k)
        ]
        if differ:
            raise ValueError(
                f"{path.parent} holds a run with other settings ({'; '.join(differ)}); "
                "use another output directory, or delete this one to start over"
            )
        return
    with atomic_write(path) as f:
        f.write(json.dumps(wanted, indent=2) + "\n")


def select(problems: Sequence[Problem], settings: EvalSettings) -> list[Problem]:
    """The problems a run answers (the first `limit`), checked for duplicate ids (records are keyed by id)."""
    chosen = list(problems[: settings.limit])
    seen: set[str] = set()
    for p in chosen:
        if p.id in seen:
            raise ValueError(f"problem id {p.id!r} occurs twice; samples are keyed by problem id")
        seen.add(p.id)
    return chosen


def sample_and_grade(
    problems: Sequence[Problem],
    settings: EvalSettings,
    tokenizer: Any,
    engine: RolloutEngine,
    path: Path | None = None,
    *,
    grader: Grader | None = None,
    progress: str | None = None,
) -> list[SampleRecord]:
    """Graded samples of `problems` (after `limit`), ordered by problem, then sample index.

    path: the samples JSONL to resume from and append to (None: keep nothing, start from scratch).
    engine: asked only for the chunks not on disk yet (wrap a costly one in `LazyEngine`).
    tokenizer: renders the prompts (`settings.template`). grader: default, `verify` in this process.
    progress: a label for a tqdm bar on stderr (None: no bar).
    """
    problems = select(problems, settings)
    size = settings.problems_per_chunk
    chunks = [problems[start : start + size] for start in range(0, len(problems), size)]
    kept: list[list[SampleRecord] | None] = [None] * len(chunks)
    if path is not None:
        kept = _resume(path, chunks, settings.n)
    grader = grader or InProcess()
    bar = None
    if progress is not None:
        from tqdm import tqdm

        done = sum(len(c) for c, k in zip(chunks, kept, strict=True) if k is not None)
        bar = tqdm(total=len(problems), initial=done, desc=progress, unit="problem", dynamic_ncols=True)
    try:
        for c, chunk in enumerate(chunks):
            if kept[c] is not None:
                continue
            rollouts = engine.generate(
                [render(settings.template, p.problem, tokenizer) for p in chunk], settings.sampling(c * size)
            )
            records = _grade(chunk, rollouts, settings.n, grader)
            if path is not None:
                _append(path, [_line(r, chunk[i // settings.n].answer) for i, r in enumerate(records)])
            kept[c] = records
            if bar is not None:
                bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    return [record for chunk_records in kept for record in chunk_records or []]


def evaluate(
    model: Any,
    tokenizer: Any,
    problems: Sequence[Problem],
    settings: EvalSettings,
    path: Path | None = None,
    *,
    engine: RolloutEngine | None = None,
    grader: Grader | None = None,
    bootstrap: int = 1000,
    progress: str | None = None,
) -> BenchmarkSummary:
    """One benchmark's summary (pass@1, pass@k, maj@n, lengths, truncation, bootstrap intervals seeded with
    `settings.seed`). Samples from `model` on rlvr's fast engine unless `engine` is given; the model is put in
    eval mode meanwhile and given back in the mode it came in. `path`: the resumable samples file."""
    if engine is None:
        from rlvr.rollout.fast import FastEngine

        engine = FastEngine(model, tokenizer)
    was_training = bool(getattr(model, "training", False))
    if model is not None:
        model.eval()
    try:
        records = sample_and_grade(
            problems, settings, tokenizer, engine, path, grader=grader, progress=progress
        )
    finally:
        if model is not None:
            model.train(was_training)
    return summarize(records, bootstrap=bootstrap, seed=settings.seed)


def read_samples(path: Path) -> tuple[list[dict[str, Any]], bool]:
    """The sample lines of `path` as dicts, and whether its last line was cut short (then left out).

    Only the last line may be cut: any other malformed line is an error naming it (the file was edited, or is
    not one of ours).
    """
    data = path.read_bytes()
    lines = data.split(b"\n")
    cut = bool(lines[-1].strip())  # text after the final newline: a write that did not finish
    out = []
    for number, raw in enumerate(lines[:-1], start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise ValueError(f"{path}:{number}: not a sample record ({e})") from None
        if not isinstance(obj, dict) or not {"problem_id", "sample_index", "text"} <= obj.keys():
            raise ValueError(f"{path}:{number}: not a sample record (needs problem_id, sample_index, text)")
        out.append(obj)
    return out, cut


def to_record(obj: Mapping[str, Any]) -> SampleRecord:
    return SampleRecord(
        problem_id=str(obj["problem_id"]),
        sample_index=int(obj["sample_index"]),
        text=str(obj["text"]),
        extracted=obj.get("extracted"),
        correct=bool(obj.get("correct", False)),
        length=int(obj.get("length", 0)),
        finish_reason=str(obj.get("finish_reason", "stop")),
    )


# --- helpers -----------------------------------------------------------------------------------------------


def _resume(path: Path, chunks: list[list[Problem]], n: int) -> list[list[SampleRecord] | None]:
    """Per chunk, its records when the file holds all of them, else None. Rewrites the file to exactly the kept
    chunks when it held anything else (a cut line, a chunk only partly written), so appends continue cleanly."""
    if not path.exists():
        return [None] * len(chunks)
    lines, cut = read_samples(path)
    by_problem: dict[str, dict[int, dict[str, Any]]] = {}
    for obj in lines:
        by_problem.setdefault(str(obj["problem_id"]), {})[int(obj["sample_index"])] = obj
    kept: list[list[SampleRecord] | None] = []
    kept_lines = []
    for chunk in chunks:
        samples = [by_problem.get(p.id, {}) for p in chunk]
        if all(sorted(s) == list(range(n)) for s in samples):
            ordered = [s[j] for s in samples for j in range(n)]
            kept.append([to_record(obj) for obj in ordered])
            kept_lines += ordered
        else:
            kept.append(None)
    if cut or len(kept_lines) != len(lines):
        with atomic_write(path) as f:
            f.writelines(json.dumps(obj, ensure_ascii=False) + "\n" for obj in kept_lines)
    return kept


def _grade(chunk: list[Problem], rollouts: list[Rollout], n: int, grader: Grader) -> list[SampleRecord]:
    if len(rollouts) != len(chunk) * n:
        raise RuntimeError(f"the engine returned {len(rollouts)} completions for {len(chunk)} prompts x {n}")
    verdicts = grader.grade([(r.text, chunk[i // n].answer) for i, r in enumerate(rollouts)])
    return [
        SampleRecord(
            problem_id=chunk[i // n].id,
            sample_index=i % n,
            text=r.text,
            extracted=v.extracted,
            correct=v.correct,
            length=len(r.completion_ids),
            finish_reason=r.finish_reason,
        )
        for i, (r, v) in enumerate(zip(rollouts, verdicts, strict=True))
    ]


def _line(record: SampleRecord, gold: str) -> dict[str, Any]:
    """A record as stored: its fields plus the gold, which `rlvr grade` needs to re-grade the file."""
    return {**asdict(record), "answer": gold}


def _append(path: Path, lines: list[dict[str, Any]]) -> None:
    """One write per chunk, flushed to disk: a kill leaves whole chunks and at most one cut line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write("".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in lines))
        f.flush()
        os.fsync(f.fileno())
