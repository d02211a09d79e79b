"""Evaluation metrics over sampled responses: pass@k, majority vote, and a per-benchmark summary with intervals.

Follows the protocol of the public recipes (REFERENCE §1): pass@1 is the mean correctness over all samples, pass@k
the unbiased estimator 1 − C(n−c, k)/C(n, k) averaged over problems, maj@k (cons@k) a majority vote over k samples'
extracted answers. Confidence intervals come from a percentile bootstrap over problems (not samples: the samples of
one problem are correlated, so resampling them would understate the spread), seeded and reproducible.

It knows graded samples only: each `SampleRecord` arrives with `correct` already set by the verifier. It does not
grade, read files or import torch; `rlvr.eval.grade` re-grades files and `rlvr.eval.generations` reads them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.rewards.math import is_equivalent

Equivalence = Callable[[str, str], bool]  # (answer, representative) -> same answer?


@dataclass(frozen=True, slots=True)
class SampleRecord:
    """One sampled response to one benchmark problem, graded.

    On disk (rlvr's eval sample JSONL, which `rlvr grade` re-grades) a line holds these fields plus the gold:
    ``{"problem_id": str | int, "sample_index": int, "text": str, "answer": <gold, str or number>,
    "extracted": str | null, "correct": bool, "length": int, "finish_reason": str}``; only ``problem_id``,
    ``sample_index``, ``text`` and ``answer`` are required to re-grade one, and ``correct`` is its stored label.
    """

    problem_id: str
    sample_index: int  # 0-based position among the problem's samples; maj@k votes over the k lowest
    text: str  # the response, no prompt: the template's prefix (if any), then the completion
    extracted: str | None  # the answer the verifier took from `text` (None: it found none)
    correct: bool
    length: int  # response tokens
    finish_reason: str  # "stop", or "length" when the token budget cut the response off


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `n` samples of which `c` are correct: 1 − C(n−c, k)/C(n, k).

    The chance that k samples drawn without replacement from the n include a correct one. Computed as
    1 − Π_{i=n−c+1..n} (1 − k/i), which equals the binomial ratio but never forms the huge binomials.
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got {n=} {c=} {k=}")
    if n - c < k:  # every draw of k holds a correct sample
        return 1.0
    miss = 1.0
    for i in range(n - c + 1, n + 1):
        miss *= 1.0 - k / i
    return 1.0 - miss


def majority_vote(
    answers: Sequence[str | None], k: int | None = None, *, equivalent: Equivalence | None = None
) -> list[int]:
    """Indices of the samples in the winning answer cluster among the first `k` (all when None).

    Answers are clustered in order: one joins the first cluster whose representative (its first answer) is the
    same string or, failing that, `equivalent` to it (default: `rlvr.rewards.math.is_equivalent`, so "1/2" and
    "0.5" vote together). The biggest cluster wins; a tie goes to the cluster whose first answer came earliest.
    None (no answer) never wins while any answer exists; when all are None the result is [].
    """
    k = len(answers) if k is None else k
    if not 1 <= k <= len(answers):
        raise ValueError(f"majority vote needs 1 <= k <= {len(answers)} answers, got k={k}")
    same = equivalent or _is_equivalent
    clusters: list[list[int]] = []  # member indices; clusters[i][0] is the representative
    by_text: dict[str, int] = {}  # exact answer string -> its cluster, the fast path
    for index, answer in enumerate(answers[:k]):
        if answer is None:
            continue
        found = by_text.get(answer)
        if found is None:
            found = next((i for i, c in enumerate(clusters) if same(answer, _text(answers, c[0]))), None)
        if found is None:
            found = len(clusters)
            clusters.append([])
        clusters[found].append(index)
        by_text.setdefault(answer, found)
    best: list[int] = []
    for members in clusters:  # in order of first appearance; strict > keeps the earliest on a tie
        if len(members) > len(best):
            best = members
    return best


def maj_at_k(
    answers: Sequence[str | None], correct: Sequence[bool], k: int, *, equivalent: Equivalence | None = None
) -> bool:
    """maj@k (cons@k): is the majority answer of the first `k` samples correct? One vote over those k, not an
    average over resampled k-subsets (R1's cons@64 is the vote over all 64 samples it drew: k = n).

    The winning cluster is correct when any of its samples was graded correct: its members share one answer, so a
    member graded wrong failed for a reason other than the value (an unfinished think block, several boxes).
    All answers None: incorrect.
    """
    if len(correct) != len(answers):
        raise ValueError(f"{len(answers)} answers but {len(correct)} correctness labels")
    return any(correct[i] for i in majority_vote(answers, k, equivalent=equivalent))


@dataclass(frozen=True, slots=True)
class BenchmarkSummary:
    """The metrics of one run on one benchmark. Accuracies are fractions in [0, 1].

    `metrics` keys: "pass@1" (mean over all samples), "pass@k" for k = 2, 4, 8, ... up to `samples_per_problem`
    (the unbiased estimator, averaged over problems), and "maj@n" with n = `samples_per_problem`.
    """

    problems: int
    samples: int
    samples_per_problem: int  # the fewest any problem has: the largest k reported
    metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]  # per metric, the bootstrap interval; {} when bootstrap=0
    mean_length_correct: float | None  # tokens; None when no sample is correct
    mean_length_incorrect: float | None  # tokens; None when every sample is correct
    truncation_rate: float  # share of samples with finish_reason "length"
    bootstrap: int  # resamples of the problems behind `intervals`
    seed: int
    confidence: float

    @property
    def pass_at_1(self) -> float:
        return self.metrics["pass@1"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "problems": self.problems,
            "samples": self.samples,
            "samples_per_problem": self.samples_per_problem,
            **self.metrics,
            "intervals": {name: list(bounds) for name, bounds in self.intervals.items()},
            "mean_length_correct": self.mean_length_correct,
            "mean_length_incorrect": self.mean_length_incorrect,
            "truncation_rate": self.truncation_rate,
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence": self.confidence,
        }


def summarize(
    records: Iterable[SampleRecord],
    *,
    bootstrap: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    equivalent: Equivalence | None = None,
) -> BenchmarkSummary:
    """Summarize one benchmark's graded samples (any order; several per problem).

    Problems may have different sample counts: pass@1 still averages over all samples, pass@k uses each problem's
    own n and c, and maj@n votes over each problem's n lowest `sample_index`es, n the smallest count.
    Intervals: percentile bootstrap over problems, `bootstrap` resamples drawn with `random.Random(seed)`.
    """
    if bootstrap < 0 or not 0 < confidence < 1:
        raise ValueError(f"need bootstrap >= 0 and 0 < confidence < 1, got {bootstrap=} {confidence=}")
    samples = list(records)
    problems = _by_problem(samples)
    if not problems:
        raise ValueError("no samples to summarize")
    n = min(len(group) for group in problems)
    ks = [2**i for i in range(1, n.bit_length())]  # 2, 4, 8, ... <= n
    # per problem: (samples, correct, {k: pass@k}, maj@n correct)
    rows = [
        (
            len(group),
            sum(r.correct for r in group),
            {k: pass_at_k(len(group), sum(r.correct for r in group), k) for k in ks},
            maj_at_k([r.extracted for r in group], [r.correct for r in group], n, equivalent=equivalent),
        )
        for group in problems
    ]

    def metrics_of(chosen: Sequence[int]) -> dict[str, float]:
        out = {"pass@1": sum(rows[i][1] for i in chosen) / sum(rows[i][0] for i in chosen)}
        for k in ks:
            out[f"pass@{k}"] = sum(rows[i][2][k] for i in chosen) / len(chosen)
        out[f"maj@{n}"] = sum(rows[i][3] for i in chosen) / len(chosen)
        return out

    point = metrics_of(range(len(rows)))
    rng = random.Random(seed)
    draws = [metrics_of(rng.choices(range(len(rows)), k=len(rows))) for _ in range(bootstrap)]
    tail = (1 - confidence) / 2
    intervals = {
        name: (_quantile(values, tail), _quantile(values, 1 - tail))
        for name in point
        if (values := sorted(d[name] for d in draws))
    }
    right = [r.length for r in samples if r.correct]
    wrong = [r.length for r in samples if not r.correct]
    return BenchmarkSummary(
        problems=len(rows),
        samples=len(samples),
        samples_per_problem=n,
        metrics=point,
        intervals=intervals,
        mean_length_correct=sum(right) / len(right) if right else None,
        mean_length_incorrect=sum(wrong) / len(wrong) if wrong else None,
        truncation_rate=sum(r.finish_reason == "length" for r in samples) / len(samples),
        bootstrap=bootstrap,
        seed=seed,
        confidence=confidence,
    )


def markdown_table(
    runs: Mapping[str, Mapping[str, BenchmarkSummary]],
    *,
    benchmarks: Sequence[str] | None = None,
    metric: str = "pass@1",
    label: str = "Model",
) -> str:
    """A results table as the recipes print theirs: a row per run, a column per benchmark, then Avg.

    Cells are `metric` in percent with one decimal; "-" where a run lacks the benchmark. Avg is the unweighted mean
    of the row's benchmarks (as in the DeepScaleR and SimpleRL tables), "-" when any is missing.
    `benchmarks`: the columns, in order (default: every benchmark, in order of first appearance).
    """
    columns = list(benchmarks) if benchmarks is not None else _benchmarks(runs.values())
    lines = [_row([label, *columns, "Avg"]), _row(["---", *["---:"] * (len(columns) + 1)])]
    for run, results in runs.items():
        values = [results[b].metrics[metric] if b in results else None for b in columns]
        lines.append(_row([run, *map(_percent, values), _percent(_mean(values))]))
    return "\n".join(lines) + "\n"


def comparison_table(
    a: Mapping[str, BenchmarkSummary],
    b: Mapping[str, BenchmarkSummary],
    *,
    names: tuple[str, str] = ("A", "B"),
    benchmarks: Sequence[str] | None = None,
    metric: str = "pass@1",
) -> str:
    """Two runs side by side: a row per benchmark (then Avg), columns A, B and Δ = B − A in points.

    A and B cells carry their bootstrap interval when the summary has one ("43.1 [38.2, 48.0]"). Δ has none: the
    two runs were bootstrapped independently, and a fair interval for a difference needs a paired bootstrap over
    the problems they share.
    """
    rows = list(benchmarks) if benchmarks is not None else _benchmarks([a, b])
    lines = [_row(["Benchmark", *names, "Δ"]), _row(["---", "---:", "---:", "---:"])]
    left = [a[name].metrics[metric] if name in a else None for name in rows]
    right = [b[name].metrics[metric] if name in b else None for name in rows]
    for name, x, y in zip(rows, left, right, strict=True):
        lines.append(
            _row(
                [name, _with_interval(a.get(name), metric), _with_interval(b.get(name), metric), _delta(x, y)]
            )
        )
    avg_a, avg_b = _mean(left), _mean(right)
    lines.append(_row(["Avg", _percent(avg_a), _percent(avg_b), _delta(avg_a, avg_b)]))
    return "\n".join(lines) + "\n"


# --- helpers -----------------------------------------------------------------------------------------------


def _is_equivalent(answer: str, representative: str) -> bool:
    return is_equivalent(answer, representative)


def _text(answers: Sequence[str | None], index: int) -> str:
    answer = answers[index]
    assert answer is not None  # only non-None answers become representatives
    return answer


def _by_problem(samples: list[SampleRecord]) -> list[list[SampleRecord]]:
    """Samples grouped by problem (in order of first appearance), each group sorted by sample_index."""
    groups: dict[str, list[SampleRecord]] = {}
    for record in samples:
        groups.setdefault(record.problem_id, []).append(record)
    out = []
    for problem, group in groups.items():
        group.sort(key=lambda r: r.sample_index)
        indices = [r.sample_index for r in group]
        if len(set(indices)) != len(indices):
            raise ValueError(f"problem {problem!r} has a sample_index more than once: {indices}")
        out.append(group)
    return out


def _quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between order statistics (numpy's default, "type 7")."""
    h = (len(sorted_values) - 1) * q
    lo = math.floor(h)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (h - lo) * (sorted_values[hi] - sorted_values[lo])


def _benchmarks(runs: Iterable[Mapping[str, BenchmarkSummary]]) -> list[str]:
    seen: dict[str, None] = {}
    for results in runs:
        seen.update(dict.fromkeys(results))
    return list(seen)


def _mean(values: Sequence[float | None]) -> float | None:
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def _with_interval(summary: BenchmarkSummary | None, metric: str) -> str:
    if summary is None:
        return "-"
    cell = _percent(summary.metrics[metric])
    if metric in summary.intervals:
        lo, hi = summary.intervals[metric]
        cell += f" [{_percent(lo)}, {_percent(hi)}]"
    return cell


def _delta(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None else f"{100 * (b - a):+.1f}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
