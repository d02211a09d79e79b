"""Near-duplicate candidates without embeddings: MinHash over word shingles, LSH banding, exact Jaccard check.

A problem is the set of its word 3-grams (`rlvr.data.words`: LaTeX layout and punctuation ignored). Two problems
are near-duplicates when the Jaccard similarity of those sets is >= the threshold (default 0.7 in
`dedup.near_dedup`). This finds lexical near-copies only: a reworded problem ("Find the sum of all x such that"
vs "What is the sum of all values of x for which") shares few 3-grams and is not found; that is what the MiniLM
embeddings are for. Like MiniLM it also merges one template with another number or word ("... the letters of
the word ALABAMA" vs "TOOT": 0.83; "the sum of the prime factors of 85,085" vs "91": 0.70): on MATH train +
SimpleRL + GSM8K + AIME after exact dedup, 167 of its 356 removals have other numbers than the kept problem.

MinHash only proposes candidates. With 32 bands of 4 rows (128 hashes) a pair at Jaccard 0.7 shares a band with
probability 1 - (1 - 0.7**4)**32 > 0.9998, at 0.5 with 0.87, at 0.3 with 0.23; every candidate is then checked
with the exact Jaccard of the two shingle sets, so the estimate never decides and no false pair gets through.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from rlvr.data.words import words

SHINGLE = 3  # words per shingle
BANDS, ROWS = 32, 4  # LSH: 128 hashes in 32 bands of 4
_PRIME = (1 << 31) - 1  # hash family (a*x + b) mod p; a, x < 2**31 so a*x fits in int64
_CHUNK = 1 << 16  # shingles hashed per numpy step: (128, 65536) int64 = 64 MiB


def shingles(text: str) -> frozenset[tuple[str, ...]]:
    """The word 3-grams of `text`; a text shorter than 3 words is one shingle of all its words."""
    toks = words(text)
    if len(toks) < SHINGLE:
        return frozenset([tuple(toks)])
    return frozenset(tuple(toks[i : i + SHINGLE]) for i in range(len(toks) - SHINGLE + 1))


def jaccard(a: frozenset[tuple[str, ...]], b: frozenset[tuple[str, ...]]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


def candidate_pairs(sets: Sequence[frozenset[tuple[str, ...]]], seed: int = 0) -> set[tuple[int, int]]:
    """Index pairs (j, i), j < i, that share at least one LSH band: a superset of the similar pairs, almost surely.

    Identical sets are paired with their first copy directly, so a problem repeated k times costs k - 1 pairs
    rather than a k*(k-1)/2 bucket.
    """
    pairs: set[tuple[int, int]] = set()
    first: dict[frozenset[tuple[str, ...]], int] = {}
    unique: list[int] = []
    for i, s in enumerate(sets):
        j = first.setdefault(s, i)
        if j != i:
            pairs.add((j, i))
        else:
            unique.append(i)
    signatures = _signatures([sets[i] for i in unique], seed)  # (U, 128)
    for band in range(BANDS):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        block = np.ascontiguousarray(signatures[:, band * ROWS : (band + 1) * ROWS])
        for row, u in enumerate(unique):
            buckets[block[row].tobytes()].append(u)
        for members in buckets.values():
            for k, i in enumerate(members):
                pairs.update((j, i) for j in members[:k])
    return pairs


def _signatures(sets: Sequence[frozenset[tuple[str, ...]]], seed: int) -> np.ndarray:
    """MinHash signatures, shape (len(sets), 128) int64: per hash function, the minimum over the set's shingles."""
    vocab: dict[tuple[str, ...], int] = {}
    ids = [[vocab.setdefault(g, len(vocab)) for g in s] for s in sets]
    # Integer ids stand in for string hashes: deterministic in-process, and distinct shingles never collide.
    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=(BANDS * ROWS, 1), dtype=np.int64)
    b = rng.integers(0, _PRIME, size=(BANDS * ROWS, 1), dtype=np.int64)
    out = np.empty((len(sets), BANDS * ROWS), dtype=np.int64)
    start = 0
    while start < len(sets):  # chunks of whole sets, about _CHUNK shingles each
        stop, size = start, 0
        while stop < len(sets) and (size == 0 or size + len(ids[stop]) <= _CHUNK):
            size += len(ids[stop])
            stop += 1
        flat = np.fromiter((x for row in ids[start:stop] for x in row), dtype=np.int64, count=size)
        hashed = (a * flat[None, :] + b) % _PRIME  # (128, size)
        offsets = np.cumsum([0] + [len(r) for r in ids[start : stop - 1]])
        out[start:stop] = np.minimum.reduceat(hashed, offsets, axis=1).T
        start = stop
    return out
