"""N-gram and digit-blind decontamination on problems made here; one test on the real AIME / MATH-500 files."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from rlvr.data.decontaminate import exact_ignoring_digits, ngram_contaminated
from rlvr.data.schema import Problem
from rlvr.data.words import words

REAL = os.environ.get("RLVR_DATA_DIR")

EVAL = (
    "Let $P(x)$ be a quadratic polynomial with real coefficients satisfying $x^2 - 2x + 2 \\le P(x) \\le "
    "2x^2 - 4x + 3$ for all real numbers $x$, and suppose $P(11) = 181$. Find $P(16)$."
)
# The same problem as another source lays it out: display math, \leq, different spacing.
EVAL_RELAID = (
    "Let $P(x)$ be a quadratic polynomial with real coefficients satisfying \\[x^2-2x+2\\leq P(x)\\leq "
    "2x^2-4x+3\\] for all real numbers $x$ and suppose $P(11)=181$.  Find $P(16)$."
)
ENDING = (
    "The probability is $\\frac{m}{n}$, where $m$ and $n$ are relatively prime positive integers. Find $m+n$."
)
STORIES = [
    "Two fair dice are rolled and the larger of the two numbers shown is recorded.",
    "A coin is flipped ten times and the longest run of heads is noted.",
    "Three points are chosen independently and uniformly at random on a circle.",
    "A committee of four is chosen at random from six men and five women.",
    "A bug walks on the edges of a cube, choosing each move uniformly at random.",
    "Each vertex of a regular hexagon is colored red or blue at random.",
    "Five cards are drawn from a standard deck without replacement.",
]


def problem(pid: str, text: str) -> Problem:
    return Problem(id=pid, problem=text, answer="1")


def evals(*texts: str) -> dict[str, list[Problem]]:
    return {"bench": [problem(f"e{i}", t) for i, t in enumerate(texts)]}


def test_words_ignore_layout_but_keep_operators() -> None:
    assert words(r"$\dfrac{1}{2}$ of \left( x_1 \right)") == ["1", "2", "of", "(", "x", "_", "1", ")"]
    assert words("x_1x_2x_3") != words("x-2x+3x")
    assert words("[asy]import olympiad; size(150);[/asy] Find $x$.") == ["find", "x"]


def test_copy_with_other_layout_is_found_with_eval_set_and_id() -> None:
    kept, removed = ngram_contaminated([problem("t0", EVAL_RELAID), problem("t1", STORIES[0])], evals(EVAL))
    assert [p.id for p in kept] == ["t1"]
    (r,) = removed
    assert (r.id, r.other_id) == ("t0", "bench:e0")
    assert r.score == 1.0 and "8-grams shared with bench:e0" in r.reason


def test_problem_embedding_an_eval_problem_is_found() -> None:
    longer = "Here is a warm-up. " + EVAL + " Then find $P(17)$ as well and explain."
    _, removed = ngram_contaminated([problem("t0", longer)], evals(EVAL))
    assert [r.other_id for r in removed] == ["bench:e0"]


def test_shared_boilerplate_alone_is_not_contamination() -> None:
    eval_set = evals(*(s + " " + ENDING for s in STORIES))
    train = [problem("t0", "A point is chosen at random inside a unit square. " + ENDING)]
    kept, removed = ngram_contaminated(train, eval_set)
    assert [p.id for p in kept] == ["t0"] and not removed
    # The plain rule (any shared 8-gram) flags it: the ending is 18 tokens long.
    _, plain = ngram_contaminated(train, eval_set, max_df=None, min_overlap=0.0)
    assert [r.id for r in plain] == ["t0"]


def test_one_coincident_phrase_in_a_long_problem_is_not_contamination() -> None:
    phrase = "the sum of the distinct prime divisors of"
    eval_text = f"Let $N$ be the number of ordered triples of integers below 1000 with product 720. Find {phrase} $N$."
    train_text = (
        f"A sequence starts at 7 and each term is three more than twice the previous term. Find {phrase} "
        "the tenth term of the sequence, and give the answer modulo 1000 as a three-digit number."
    )
    kept, removed = ngram_contaminated([problem("t0", train_text)], evals(eval_text))
    assert [p.id for p in kept] == ["t0"] and not removed
    _, plain = ngram_contaminated([problem("t0", train_text)], evals(eval_text), min_overlap=0.0)
    assert [r.id for r in plain] == ["t0"]


def test_short_problems_are_compared_whole() -> None:
    short_eval = "Compute $\\dbinom{31}{28}$."
    long_eval = "Compute $\\dbinom{31}{28}$ and then subtract the number of primes below twenty from it."
    kept, removed = ngram_contaminated(
        [problem("t0", "Compute $\\binom{31}{28}$"), problem("t1", "Compute $31 - 28$.")],
        evals(short_eval, long_eval),
    )
    assert [(r.id, r.other_id) for r in removed] == [("t0", "bench:e0")]
    assert "whole text" in removed[0].reason
    assert [p.id for p in kept] == ["t1"]


def test_numeric_variant_is_caught_ignoring_digits() -> None:
    variant = EVAL.replace("181", "97").replace("P(16)", "P(12)").replace("2x + 2", "2x + 5")
    train = [problem("t0", variant), problem("t1", STORIES[1])]
    _, removed = exact_ignoring_digits(train, evals(STORIES[2], EVAL))
    assert [(r.id, r.other_id) for r in removed] == [("t0", "bench:e1")]
    assert "ignoring digits" in removed[0].reason


def test_digit_blind_check_ignores_dollars_and_spacing_not_words() -> None:
    eval_set = {"aime": [problem("a1", "Find $x$ if $2x = 10$.")]}
    kept, removed = exact_ignoring_digits(
        [
            problem("t0", "find x if 2x=14."),
            problem("t1", "Find $y$ if $2y = 10$."),
            problem("t2", "Find $x$ if $2x=6$?"),
        ],
        eval_set,
    )
    assert [r.id for r in removed] == ["t0", "t2"] and [p.id for p in kept] == ["t1"]
    assert removed[0].other_id == "aime:a1"


def test_n_must_be_positive() -> None:
    with pytest.raises(ValueError):
        ngram_contaminated([], evals(EVAL), n=0)


@pytest.mark.data
@pytest.mark.skipif(not REAL, reason="RLVR_DATA_DIR is not set")
def test_aime_problems_in_math500_are_found() -> None:
    root = Path(str(REAL))
    math500 = {"math500": _read(root / "eval" / "math500.jsonl")}
    aime = _read(root / "train" / "aime_1983_2023.jsonl")
    shared = {
        ("aime-2010-I-6", "math500:test/intermediate_algebra/2146.json"),
        ("aime-2015-II-6", "math500:test/intermediate_algebra/1411.json"),
        ("aime-2017-II-7", "math500:test/intermediate_algebra/1849.json"),
    }
    for check in (ngram_contaminated, exact_ignoring_digits):
        _, removed = check(aime, math500)
        assert {(r.id, r.other_id) for r in removed} >= shared, check.__name__


def _read(path: Path) -> list[Problem]:
    with open(path, encoding="utf-8") as f:
        return [Problem(id=o["id"], problem=o["problem"], answer=o["answer"]) for o in map(json.loads, f)]
