"""Why a curation step dropped a record: the one shape every dedup and decontamination step reports.

A pipeline report shows examples of what each step removed, so a removal carries the record it was judged against
(`other_id`) and, where the judgement was a similarity, the value that crossed the threshold (`score`).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Removed:
    id: str  # the removed record's id
    reason: str  # one line a reader can check by hand, e.g. "near-duplicate (minilm cosine 0.953 > 0.9)"
    other_id: str | None = None  # the kept record it duplicates, or "evalset:id" of the eval problem it leaks
    score: float | None = None  # cosine / Jaccard / n-gram overlap that decided it; None for exact matches
