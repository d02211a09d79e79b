"""Sample n responses per problem, grade them, and keep every graded sample on disk as it is made, resumably.

The loop `rlvr eval` and `rlvr sample` share, and that the RL trainer and the demo call: problems go to the rollout
engine in chunks sized by a token budget (`plan_chunks`: problems x n x (longest prompt + max_new_tokens) at most
`EvalSettings.chunk_tokens`, a small budget on a CPU so that a chunk takes about a minute, a large one on a GPU);
each chunk's samples are graded by the verifier and appended to a JSONL file (one line per sample, see
`SampleRecord` for the fields) in one write, then flushed and fsynced. A killed run is resumed by running it again:
the file is read back, a truncated last line (the kill landed mid-write) is dropped, every problem that has its n
samples is kept, and only the others are sampled. The same holds under another --limit: a rerun with a smaller
one answers from the file alone, a larger one samples only the problems beyond.

Reproducibility: chunk boundaries depend only on the problems before them (a smaller limit gives a prefix of the
same chunks), and chunk c's sampling seed is derived from (seed, index of its first problem), so a resumed run
writes the samples an uninterrupted one would (same engine, same budget, same machine: GPU kernels may still differ
in the last bits), except for a chunk the kill cut mid-write: its remaining problems are sampled as a smaller batch,
which draws other random numbers. Per-problem seeds would need one `generate` call per problem, which starves a GPU
of batch; a chunk is the unit of batching, a problem the unit of resumption.

What must match for a rerun to reuse the file is `EvalSettings.identity` (n, sampling, max tokens, template, seed;
the callers add the model and engine): `settings_file` refuses a rerun with others, in one line. The limit and the
token budget are not part of it: they change which problems are sampled and how they are batched, not what one
sample is. It does not load models or benchmarks (the commands do).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

from rlvr.data.schema import Problem
from rlvr.data.templates import Template, render, resolve, response
from rlvr.eval.metrics import BenchmarkSummary, SampleRecord, summarize
from rlvr.io import atomic_write
from rlvr.rewards.math import Verdict, verify
from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

# tokens per generate call (problems x n x (prompt + max_new_tokens)) when EvalSettings.chunk_tokens is 0:
# 4K on a CPU. Decoding reads every weight once per step, so a step of B rows costs about t0 + B * c: for
# SmolLM2-135M (fp32, fast engine, 2 cores) c is ~8.5 ms a row (a batched forward: 17 CPU-ms per token) and t0 tens
# of ms on idle cores (an estimate: the 2 shared cores it was measured on ran ~1 s a step). 4K tokens is ~10
# problems x (150 prompt + 256 new tokens), ~35 s a chunk; on a busy machine several times that.
CPU_CHUNK_TOKENS = 1 << 12
GPU_CHUNK_TOKENS = 1 << 24  # 16M: 512 sequences of 32K, one vLLM call's worth


class Grader(Protocol):
    """Grades (response, gold) pairs, verdicts in input order: `rlvr.rewards.pool.verifier_pool` makes one."""

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


@dataclass(frozen=True, slots=True)
class InProcess:
    """The default `Grader`: `verify` in this process, with only its cooperative time limit."""

    final_form: bool = False  # the set's rule (`rlvr.data.registry.final_form`)

    def grade(self, pairs: Sequence[tuple[str, str]]) -> list[Verdict]:
        return [verify(response, gold, final_form=self.final_form) for response, gold in pairs]


@dataclass(frozen=True, slots=True)
class EvalSettings:
    """Everything that decides which samples a run draws. Defaults: the recipes' protocol (REFERENCE §1)."""

    n: int = 16  # samples per problem (DeepScaleR reports 16, R1 64)
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 0  # 0: off
    max_new_tokens: int = 32768  # the protocol's 32K; engines clip it to the model's context
    template: str | Template = "deepscaler"  # a name or an inline template (rlvr.data.templates)
    seed: int = 0  # chunk c samples with seed * 1_000_003 + (index of its first problem)
    limit: int | None = None  # only the first `limit` problems of each set
    chunk_tokens: int = 0  # per generate call: problems x n x (prompt + max_new_tokens); 0: by device

    def __post_init__(self) -> None:
        if self.n < 1 or self.chunk_tokens < 0 or (self.limit is not None and self.limit < 1):
            raise ValueError(
                f"need n >= 1, chunk_tokens >= 0, limit >= 1: got {self.n=} {self.chunk_tokens=} {self.limit=}"
            )
        resolve(self.template)  # an unknown name fails here, before anything is loaded
        self.sampling(0)  # SamplingParams checks the rest

    def on_device(self, gpu: bool) -> EvalSettings:
        """These settings with the token budget of a GPU or a CPU run when it is 0 (auto)."""
        return self if self.chunk_tokens else replace(self, chunk_tokens=chunk_tokens_for(gpu))

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

    def identity(self) -> dict[str, Any]:
        """What a stored sample depends on, as a run's settings file keeps it: all but the limit and the budget."""
        return {k: v for k, v in asdict(self).items() if k not in ("limit", "chunk_tokens")}


def chunk_tokens_for(gpu: bool) -> int:
    """The default token budget per generate call on a GPU or a CPU."""
    return GPU_CHUNK_TOKENS if gpu else CPU_CHUNK_TOKENS


def plan_chunks(prompt_tokens: Sequence[int], n: int, max_new_tokens: int, budget: int) -> list[range]:
    """Consecutive problems per generate call: each chunk takes problems while problems x n x (its longest prompt
    + max_new_tokens) stays within `budget` (a padded batch costs its longest row), and at least one. A chunk's
    end depends only on the problems up to it, so the chunks of the first k problems are a prefix of these."""
    chunks: list[range] = []
    start, longest = 0, 0
    for i, tokens in enumerate(prompt_tokens):
        wider = max(longest, tokens)
        if i > start and (i + 1 - start) * n * (wider + max_new_tokens) > budget:
            chunks.append(range(start, i))
            start, wider = i, tokens
        longest = wider
    if start < len(prompt_tokens):
        chunks.append(range(start, len(prompt_tokens)))
    return chunks


def settings_file(path: Path, settings: Mapping[str, Any]) -> None:
    """Write `settings` to `path`, or check that the run already there used the same ones (ValueError if not).
    Keys the stored file has and `settings` lacks (an older rlvr's) are not compared, nor are settings beside no
    samples (a run that stopped on a bad template: its rerun with a good one goes ahead)."""
    wanted = json.loads(json.dumps(dict(settings)))  # as it reads back: tuples become lists
    sampled = any(f.stat().st_size for f in path.parent.glob("*samples.jsonl"))
    if path.exists() and sampled:  # settings of a run that failed before its first sample bind nothing
        stored = json.loads(path.read_text(encoding="utf-8"))
        differ = [f"{k}={stored.get(k)!r} there, {v!r} now" for k, v in wanted.items() if stored.get(k) != v]
        if differ:
            raise ValueError(
                f"{path.parent} holds samples drawn with other settings ({'; '.join(differ)}); "
                "use another --out, or delete that directory to start over"
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
    engine: asked only for the problems not on disk yet (wrap a costly one in `LazyEngine`).
    tokenizer: renders the prompts (`settings.template`) and counts their tokens for the budget (None: a raw
    template, counted in characters). grader: default, `verify` in this process.
    progress: a label for a bar over problems with its ETA on stderr (None: none; no terminal: none either).
    """
    problems = select(problems, settings)
    template = resolve(settings.template)
    prompts = [render(template, p.problem, tokenizer) for p in problems]
    budget = settings.chunk_tokens or chunk_tokens_for(_cuda())
    chunks = plan_chunks(_token_counts(tokenizer, prompts), settings.n, settings.max_new_tokens, budget)
    done = _resume(path, settings.n) if path is not None else {}
    grader = grader or InProcess()
    from tqdm import tqdm

    bar = tqdm(
        total=len(problems), initial=sum(p.id in done for p in problems), desc=progress, unit="problem",
        disable=None if progress is not None else True, file=sys.stderr, dynamic_ncols=True,
    )  # fmt: skip
    with bar:
        for chunk in chunks:
            missing = [i for i in chunk if problems[i].id not in done]
            if not missing:
                continue
            rollouts = engine.generate([prompts[i] for i in missing], settings.sampling(chunk.start))
            part = [problems[i] for i in missing]
            records = _grade(part, rollouts, settings.n, grader, template)
            if path is not None:
                _append(path, [_line(r, part[k // settings.n].answer) for k, r in enumerate(records)])
            for k, p in enumerate(part):
                done[p.id] = records[k * settings.n : (k + 1) * settings.n]
            bar.update(len(missing))
    return [record for p in problems for record in done[p.id]]


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
    `settings.seed`). Samples from `model` on rlvr's fast engine (hf's for a model it cannot run) unless `engine` is
    given; the model is put in eval mode meanwhile and given back in the mode it came in. `path`: the resumable
    samples file."""
    if engine is None:
        from rlvr.rollout import local_engine

        engine = local_engine("fast", model, tokenizer)  # or hf, for a model the fast decoder cannot run
    if model is not None:
        settings = settings.on_device(next(model.parameters()).device.type == "cuda")
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


def _resume(path: Path, n: int) -> dict[str, list[SampleRecord]]:
    """The records of every problem the file holds all n samples of, by problem id (whatever the limit: a problem
    beyond it is kept for a later run). Rewrites the file to exactly those when it held anything else (a cut
    line, a problem only partly written), so appends continue cleanly."""
    if not path.exists():
        return {}
    lines, cut = read_samples(path)
    by_problem: dict[str, dict[int, dict[str, Any]]] = {}
    for obj in lines:
        by_problem.setdefault(str(obj["problem_id"]), {})[int(obj["sample_index"])] = obj
    done: dict[str, list[SampleRecord]] = {}
    kept_lines = []
    for problem, samples in by_problem.items():
        if sorted(samples) == list(range(n)):
            ordered = [samples[j] for j in range(n)]
            done[problem] = [to_record(obj) for obj in ordered]
            kept_lines += ordered
    if cut or len(kept_lines) != len(lines):
        with atomic_write(path) as f:
            f.writelines(json.dumps(obj, ensure_ascii=False) + "\n" for obj in kept_lines)
    return done


def _grade(
    chunk: list[Problem], rollouts: list[Rollout], n: int, grader: Grader, template: Template
) -> list[SampleRecord]:
    """Records of one chunk's rollouts, graded and stored as the model wrote them: prefix + completion."""
    if len(rollouts) != len(chunk) * n:
        raise RuntimeError(f"the engine returned {len(rollouts)} completions for {len(chunk)} prompts x {n}")
    texts = [response(template, r.text) for r in rollouts]
    verdicts = grader.grade([(text, chunk[i // n].answer) for i, text in enumerate(texts)])
    return [
        SampleRecord(
            problem_id=chunk[i // n].id,
            sample_index=i % n,
            text=texts[i],
            extracted=v.extracted,
            correct=v.correct,
            length=len(r.completion_ids),
            finish_reason=r.finish_reason,
        )
        for i, (r, v) in enumerate(zip(rollouts, verdicts, strict=True))
    ]


def _token_counts(tokenizer: Any, prompts: list[str]) -> list[int]:
    """Prompt lengths in tokens, as the engines encode them (characters without a tokenizer)."""
    if tokenizer is None or not prompts:
        return [len(p) for p in prompts]
    return [len(ids) for ids in tokenizer(prompts, add_special_tokens=False)["input_ids"]]


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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
