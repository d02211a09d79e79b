"""Eval metrics against hand-computed numbers: pass@k, majority vote, the benchmark summary and its tables."""

from __future__ import annotations

import math

import pytest

from rlvr.eval.metrics import (
    BenchmarkSummary,
    SampleRecord,
    comparison_table,
    maj_at_k,
    majority_vote,
    markdown_table,
    pass_at_k,
    summarize,
)


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 1, 2 / 5),  # pass@1 is c/n
        (10, 3, 4, 1 - 35 / 210),  # 1 - C(7,4)/C(10,4)
        (4, 0, 2, 0.0),
        (4, 3, 2, 1.0),  # n - c = 1 < k: every pair holds a correct sample
        (4, 4, 4, 1.0),
        (1000, 1, 1, 0.001),
    ],
)
def test_pass_at_k_hand_values(n: int, c: int, k: int, expected: float) -> None:
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_binomials() -> None:
    for n in range(1, 13):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - math.comb(n - c, k) / math.comb(n, k)
                assert pass_at_k(n, c, k) == pytest.approx(exact, abs=1e-12), (n, c, k)


def test_pass_at_k_large_n_is_finite() -> None:
    # C(1024, 512) overflows a float; the product form does not form it
    assert pass_at_k(1024, 1, 512) == pytest.approx(0.5)


@pytest.mark.parametrize(("n", "c", "k"), [(4, 1, 5), (4, 1, 0), (4, 5, 1), (4, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError, match="pass@k"):
        pass_at_k(n, c, k)


def test_equivalent_answers_vote_together() -> None:
    answers = ["1/2", "3", "0.5", "\\frac{1}{2}", "3"]
    assert majority_vote(answers) == [0, 2, 3]  # three votes for one half beat two for 3
    assert maj_at_k(answers, [True, False, False, False, False], k=5)
    assert not maj_at_k(answers, [False, True, False, False, True], k=5)


def test_vote_uses_only_the_first_k() -> None:
    answers = ["7", "8", "8", "8"]
    assert majority_vote(answers, 1) == [0]
    assert majority_vote(answers, 4) == [1, 2, 3]
    assert maj_at_k(answers, [True, False, False, False], k=1)
    assert not maj_at_k(answers, [True, False, False, False], k=4)


def test_tie_goes_to_the_answer_seen_first() -> None:
    assert majority_vote(["8", "7", "7", "8"]) == [0, 3]
    assert majority_vote(["7", "8"]) == [0]
    assert majority_vote(["0.5", "3", "3", "1/2"]) == [0, 3]  # the tie counts the equivalent cluster whole


def test_none_never_wins_unless_all_are_none() -> None:
    assert majority_vote([None, None, None, "5"]) == [3]
    assert majority_vote([None, None]) == []
    assert not maj_at_k([None, None], [False, False], k=2)


def test_exact_strings_cluster_without_the_equivalence() -> None:
    calls: list[tuple[str, str]] = []

    def never(a: str, b: str) -> bool:
        calls.append((a, b))
        return False

    assert majority_vote(["x", "y", "x"], equivalent=never) == [0, 2]
    assert calls == [("y", "x")]  # the second "x" took the fast path


def test_vote_rejects_bad_k() -> None:
    with pytest.raises(ValueError, match="1 <= k <= 2"):
        majority_vote(["1", "2"], 3)
    with pytest.raises(ValueError, match="2 answers but 1"):
        maj_at_k(["1", "2"], [True], 2)


def record(
    problem: str, index: int, correct: bool, extracted: str | None, length: int, finish: str = "stop"
) -> SampleRecord:
    return SampleRecord(problem, index, f"text {problem}{index}", extracted, correct, length, finish)


# Problem a: 2 of 4 correct, "2" vs "3" tie -> "2" (first) wins, which is correct; one sample truncated.
# Problem b: 1 of 4 correct, "5" has two votes -> wrong.
RECORDS = [
    record("a", 0, True, "2", 10),
    record("a", 1, False, "3", 20, "length"),
    record("a", 2, True, "2", 30),
    record("a", 3, False, "3", 40),
    record("b", 0, False, "5", 100),
    record("b", 1, False, "5", 100),
    record("b", 2, False, None, 50),
    record("b", 3, True, "4", 10),
]


def test_summary_hand_values() -> None:
    s = summarize(RECORDS, bootstrap=0)
    assert (s.problems, s.samples, s.samples_per_problem) == (2, 8, 4)
    assert s.metrics == pytest.approx(
        {
            "pass@1": 3 / 8,
            "pass@2": ((1 - 1 / 6) + (1 - 3 / 6)) / 2,  # a: 1 - C(2,2)/C(4,2); b: 1 - C(3,2)/C(4,2)
            "pass@4": 1.0,
            "maj@4": 0.5,
        }
    )
    assert s.pass_at_1 == 3 / 8
    assert s.mean_length_correct == pytest.approx((10 + 30 + 10) / 3)
    assert s.mean_length_incorrect == pytest.approx((20 + 40 + 100 + 100 + 50) / 5)
    assert s.truncation_rate == 1 / 8
    assert s.intervals == {}


def test_summary_with_uneven_sample_counts() -> None:
    # c has 3 samples, given out of order; n = 3, so pass@2 and maj@3 (first three by sample_index) only
    extra = [record("c", 2, True, "9", 5), record("c", 0, False, "1", 5), record("c", 1, False, "1", 5)]
    s = summarize([*RECORDS, *extra], bootstrap=0)
    assert s.samples_per_problem == 3
    assert sorted(s.metrics) == ["maj@3", "pass@1", "pass@2"]
    assert s.metrics["pass@1"] == pytest.approx(4 / 11)  # over all samples, not the mean of problem means
    # maj@3: a votes over "2","3","2" -> right; b over "5","5",None -> wrong; c over "1","1","9" -> wrong
    assert s.metrics["maj@3"] == pytest.approx(1 / 3)


def test_summary_rejects_duplicates_and_nothing() -> None:
    with pytest.raises(ValueError, match="sample_index more than once"):
        summarize([record("a", 0, True, "1", 1), record("a", 0, False, "2", 1)])
    with pytest.raises(ValueError, match="no samples"):
        summarize([])


def many_problems(correct: int, total: int) -> list[SampleRecord]:
    return [record(str(i), 0, i < correct, str(i), 1) for i in range(total)]


def test_bootstrap_is_seeded() -> None:
    records = many_problems(20, 50)
    first = summarize(records, bootstrap=200, seed=1)
    assert summarize(records, bootstrap=200, seed=1).intervals == first.intervals
    other = summarize(records, bootstrap=200, seed=2)
    assert other.intervals["pass@1"] != first.intervals["pass@1"]
    lo, hi = first.intervals["pass@1"]
    assert 0.2 < lo < 0.4 < hi < 0.6  # around the point estimate 0.4 (binomial sd ~0.07)


def test_bootstrap_resamples_problems_not_samples() -> None:
    # Two problems, all 4 samples right on one and all wrong on the other: a resample of problems gives pass@1 of
    # 0, 0.5 or 1 (chance 1/4, 1/2, 1/4), so the 95% interval is [0, 1]. Resampling the 8 samples would give a
    # narrower one.
    records = [record("a", i, True, "1", 1) for i in range(4)] + [
        record("b", i, False, "2", 1) for i in range(4)
    ]
    s = summarize(records, bootstrap=1000, seed=0)
    assert s.intervals["pass@1"] == (0.0, 1.0)
    assert s.intervals["maj@4"] == (0.0, 1.0)


def test_summary_to_dict() -> None:
    d = summarize(RECORDS, bootstrap=10, seed=3).to_dict()
    assert d["pass@1"] == 3 / 8 and d["maj@4"] == 0.5 and d["problems"] == 2
    assert set(d["intervals"]) == {"pass@1", "pass@2", "pass@4", "maj@4"}
    assert d["seed"] == 3 and d["bootstrap"] == 10 and d["truncation_rate"] == 1 / 8


def fixed(pass1: float, interval: tuple[float, float] | None = None) -> BenchmarkSummary:
    return BenchmarkSummary(
        problems=30,
        samples=30,
        samples_per_problem=1,
        metrics={"pass@1": pass1, "maj@1": pass1},
        intervals={} if interval is None else {"pass@1": interval},
        mean_length_correct=None,
        mean_length_incorrect=None,
        truncation_rate=0.0,
        bootstrap=0,
        seed=0,
        confidence=0.95,
    )


def test_markdown_table() -> None:
    runs = {
        "R1-Distill-1.5B": {"AIME 2024": fixed(0.289), "MATH 500": fixed(0.839)},
        "rlvr": {"AIME 2024": fixed(0.431)},
    }
    assert markdown_table(runs) == (
        "| Model | AIME 2024 | MATH 500 | Avg |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| R1-Distill-1.5B | 28.9 | 83.9 | 56.4 |\n"
        "| rlvr | 43.1 | - | - |\n"
    )
    assert markdown_table(runs, benchmarks=["AIME 2024"], label="Run").splitlines()[2] == (
        "| R1-Distill-1.5B | 28.9 | 28.9 |"
    )


def test_comparison_table() -> None:
    a = {"AIME 2024": fixed(0.289, (0.2, 0.4)), "MATH 500": fixed(0.839)}
    b = {"AIME 2024": fixed(0.431), "MATH 500": fixed(0.877)}
    assert comparison_table(a, b, names=("base", "rl")) == (
        "| Benchmark | base | rl | Δ |\n"
        "| --- | ---: | ---: | ---: |\n"
        "| AIME 2024 | 28.9 [20.0, 40.0] | 43.1 | +14.2 |\n"
        "| MATH 500 | 83.9 | 87.7 | +3.8 |\n"
        "| Avg | 56.4 | 65.4 | +9.0 |\n"
    )
