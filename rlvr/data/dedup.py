"""Deduplication of training problems: exact (normalised text) and near (embeddings or MinHash).

Both keep the first record of each group in input order, so put the set you prefer to keep (its ids, answers,
metadata) first. Every removal names the kept record it duplicates.

Near-duplicates, two methods:
- "minilm": cosine similarity of all-MiniLM-L6-v2 sentence embeddings above `threshold` (0.9), after
  DeepScaleR's curation. It catches rewordings. It weighs words, not numbers: one changed word ("with" vs
  "without replacement": 0.996) or other numbers in a long problem (0.96) is merged with the original, while
  short problems with other numbers stay apart (0.77-0.86). On MATH train + SimpleRL + GSM8K + AIME after
  exact dedup, 342 of its 586 removals have other numbers than the kept problem ("Jasmine had 3 paperclips
  ... double" vs "2 paperclips ... triple": 0.99): many are distinct problems of one template, so 0.9 is
  aggressive for RL data. Each reason carries the cosine, so the report can show them.
- "minhash": Jaccard similarity of word 3-gram sets >= `threshold` (0.7 when not given; a cosine threshold
  does not transfer). Pure numpy, finds lexical near-copies only. See rlvr/data/minhash.py.
"auto" takes minilm when the extra `rlvr[embed]` is installed, else minhash; the result names the method used.

Greedy against kept records: a problem is dropped when an earlier *kept* problem is above the threshold, and the
one it is reported against is the most similar kept one. So a chain A~B, B~C with A and C apart keeps A and C
(connected components would drop C too), and no two kept problems are above the threshold.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from typing import Literal, NamedTuple

from rlvr.data.removed import Removed
from rlvr.data.schema import Problem

Method = Literal["minilm", "minhash"]
MINILM_THRESHOLD = 0.9  # cosine, DeepScaleR's value
MINHASH_THRESHOLD = 0.7  # Jaccard of word 3-grams
_SPACES = re.compile(r"\s+")
_EDGES = string.punctuation + string.whitespace
_BLOCK_CELLS = 1 << 25  # similarity-matrix cells per block: 32M float32 = 128 MiB


def normalize_text(text: str) -> str:
    """The text exact dedup compares: lowercased, whitespace runs as one space, punctuation stripped at both ends.

    Ignored: case, line breaks and spacing, a trailing "." / "?" / "$" or leading "$" or "\\[" and similar.
    Not ignored: everything inside (LaTeX spelling `\\dfrac` vs `\\frac`, `$x$` vs `x`, spaces inside vs none,
    as in "a+b" vs "a + b", digits, Unicode variants). Near-dedup and decontamination look past those.
    """
    return _SPACES.sub(" ", text.lower()).strip(_EDGES)


def exact_dedup(problems: Sequence[Problem]) -> tuple[list[Problem], list[Removed]]:
    """Keep the first problem of each `normalize_text` group; the others are removed against it.

    When the duplicates' answers differ the reason says so: one of the two golds is likely wrong.
    """
    first: dict[str, Problem] = {}
    kept: list[Problem] = []
    removed: list[Removed] = []
    for p in problems:
        other = first.setdefault(normalize_text(p.problem), p)
        if other is p:
            kept.append(p)
            continue
        reason = "exact duplicate (normalised text)"
        if other.answer.strip() != p.answer.strip():
            reason += f"; answers differ: {other.answer!r} kept, {p.answer!r} dropped"
        removed.append(Removed(p.id, reason, other_id=other.id))
    return kept, removed


class NearDedup(NamedTuple):
    """near_dedup's result: indexable like (kept, removed), plus the method that ran."""

    kept: list[Problem]
    removed: list[Removed]
    method: Method  # which method ran, for the report ("auto" resolved)


def resolve_method(method: str = "auto") -> Method:
    """The method "auto" stands for: "minilm" when the embedding extra is installed, else "minhash"."""
    if method == "auto":
        from rlvr.data import embed

        return "minilm" if embed.available() else "minhash"
    if method in ("minilm", "minhash"):
        return method  # type: ignore[return-value]
    raise ValueError(f"unknown near-dedup method {method!r}: use 'minilm', 'minhash' or 'auto'")


def near_dedup(
    problems: Sequence[Problem],
    threshold: float | None = None,
    method: str = "auto",
    batch_size: int = 64,
) -> NearDedup:
    """Drop problems above `threshold` similarity to an earlier kept one; returns (kept, removed, method).

    threshold: cosine for minilm (default 0.9, a pair must be strictly above), Jaccard for minhash (default 0.7,
    at or above). batch_size: texts per embedding forward pass.
    """
    used = resolve_method(method)
    if used == "minilm":
        limit = MINILM_THRESHOLD if threshold is None else threshold
        matches = _cosine_matches(problems, limit, batch_size)
        label = f"minilm cosine {{:.3f}} > {limit}"
    else:
        limit = MINHASH_THRESHOLD if threshold is None else threshold
        matches = _jaccard_matches(problems, limit)
        label = f"minhash word-3-gram Jaccard {{:.3f}} >= {limit}"
    kept: list[Problem] = []
    removed: list[Removed] = []
    is_kept = [False] * len(problems)
    for i, p in enumerate(problems):
        best = max(((s, j) for j, s in matches.get(i, ()) if is_kept[j]), default=None)
        if best is None:
            is_kept[i] = True
            kept.append(p)
        else:
            score, j = best
            reason = "near-duplicate (" + label.format(score) + ")"
            removed.append(Removed(p.id, reason, other_id=problems[j].id, score=round(score, 4)))
    return NearDedup(kept, removed, used)


def _cosine_matches(
    problems: Sequence[Problem], threshold: float, batch_size: int
) -> dict[int, list[tuple[int, float]]]:
    """For each i, the earlier j with cosine > threshold: exact search, blockwise so memory stays bounded.

    Identical texts are embedded once. Each block of rows is compared with all earlier rows in one matrix
    product: N^2/2 dot products of width 384, 3.6 s for 18.6K problems on two CPU cores (embedding them takes
    minutes; see embed.py).
    """
    import numpy as np

    from rlvr.data.embed import embed

    unique: dict[str, int] = {}
    row_of = [unique.setdefault(p.problem, len(unique)) for p in problems]
    vectors = embed(list(unique), batch_size=batch_size)[row_of]  # (N, 384), unit norm
    n = len(problems)
    block = max(1, min(n, _BLOCK_CELLS // max(n, 1)))
    matches: dict[int, list[tuple[int, float]]] = {}
    for start in range(0, n, block):
        stop = min(n, start + block)
        sims = vectors[start:stop] @ vectors[:stop].T  # (rows, stop)
        sims[np.arange(stop - start)[:, None] + start <= np.arange(stop)[None, :]] = -1.0  # only earlier j
        for r, j in zip(*np.nonzero(sims > threshold), strict=True):
            matches.setdefault(start + int(r), []).append((int(j), float(sims[r, j])))
    return matches


def _jaccard_matches(problems: Sequence[Problem], threshold: float) -> dict[int, list[tuple[int, float]]]:
    """For each i, the earlier j with word-3-gram Jaccard >= threshold (MinHash candidates, exact check)."""
    from rlvr.data import minhash

    sets = [minhash.shingles(p.problem) for p in problems]
    matches: dict[int, list[tuple[int, float]]] = {}
    for j, i in minhash.candidate_pairs(sets):
        score = minhash.jaccard(sets[j], sets[i])
        if score >= threshold:
            matches.setdefault(i, []).append((j, score))
    return matches
