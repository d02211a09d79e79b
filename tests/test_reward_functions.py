"""Reward functions against hand-computed numbers.

Responses with a plain `\\boxed{5}` and gold "5" work with any verifier; where a test needs a verdict the
verifier might reach differently (an `<answer>` tag, a fallback answer), `verify` is replaced by a stub.
"""

from __future__ import annotations

import math
import subprocess
import sys

import pytest

from rlvr.rewards import functions
from rlvr.rewards.functions import (
    REWARDS,
    accuracy,
    cosine_length,
    dapo_overlong,
    deepscaler,
    kimi_length_penalty,
    r1_format,
    r1_zero,
    simplerl,
    weighted_sum,
)
from rlvr.rewards.language import chain_of_thought, language_consistency
from rlvr.rewards.math import Verdict


@pytest.fixture
def always_correct(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Make `verify` call everything correct; returns the responses it was asked about."""
    seen: list[str] = []

    def fake(response: str, gold: str, **options: object) -> Verdict:
        seen.append(response)
        return Verdict(True, gold, "equal")

    monkeypatch.setattr(functions, "verify", fake)
    return seen


# --- accuracy, format, recipe rewards ---------------------------------------------------------------------


def test_accuracy() -> None:
    assert accuracy("so the answer is \\boxed{5}", "5") == 1.0
    assert accuracy("so the answer is \\boxed{6}", "5") == 0.0
    assert accuracy("", "5") == 0.0


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (" <think>2 + 3 = 5</think> <answer>5</answer>", 1.0),  # R1-Zero, leading space after "Assistant:"
        ("<think>\nadd\n</think>\n<answer>\n5\n</answer>\n", 1.0),
        ("<think>add</think>\nSo the answer is \\boxed{5}.", 1.0),  # boxed answer after the think block
        ("<think>add</think>", 0.0),  # no answer
        ("<think>add</think> 5", 0.0),  # an answer, but neither tagged nor boxed
        ("<think>add</think> <answer> </answer>", 0.0),  # blank answer
        ("<think>add</think> \\boxed{ }", 0.0),  # empty box
        ("<think> </think> <answer>5</answer>", 0.0),  # no reasoning
        ("Sure! <think>add</think> <answer>5</answer>", 0.0),  # text before <think>
        ("<think>add</think> <answer>5</answer> done", 0.0),  # text after </answer>
        ("<think>add</think> I think <answer>5</answer>", 0.0),  # text before <answer>
        ("<think>add</think> <answer>5</answer><answer>6</answer>", 0.0),  # two answers
        ("<think>a</think><think>b</think> <answer>5</answer>", 0.0),  # two think blocks
        ("<think>add <answer>5</answer>", 0.0),  # think never closed
        ("add</think> <answer>5</answer>", 0.0),  # think never opened
        ("<answer>5</answer>", 0.0),
    ],
)
def test_r1_format(response: str, expected: float) -> None:
    assert r1_format(response) == expected


def test_deepscaler() -> None:
    assert deepscaler("add them</think> \\boxed{5}", "5") == 1.0
    assert deepscaler("<think>add them</think>\n\\boxed{5}", "5") == 1.0
    assert deepscaler("<think>add them</think> \\boxed{6}", "5") == 0.0
    assert deepscaler("\\boxed{5}", "5") == 0.0  # right answer, but </think> missing
    assert deepscaler("<think>it is \\boxed{5} I guess", "5") == 0.0  # truncated inside the think block


def test_deepscaler_grades_only_text_after_think(always_correct: list[str]) -> None:
    assert deepscaler("scratch \\boxed{4}</think> final \\boxed{5}", "5") == 1.0
    assert always_correct == [" final \\boxed{5}"]
    assert deepscaler("no closing tag \\boxed{5}", "5") == 0.0
    assert len(always_correct) == 1  # verify was not even asked


def test_simplerl() -> None:
    assert simplerl("so \\boxed{5}", "5") == 1.0
    assert simplerl("so \\boxed{6}", "5") == -0.5
    assert simplerl("so the answer is 6", "5") == -1.0
    assert simplerl("so \\boxed{}", "5") == -1.0  # an empty box is no answer
    assert simplerl("<think>\\boxed{5}</think> so \\boxed{5}", "5") == 1.0


def test_simplerl_needs_the_box_even_when_verify_finds_an_answer(always_correct: list[str]) -> None:
    assert simplerl("the answer is 5", "5") == -1.0  # a fallback answer does not teach the format
    assert simplerl("<think>so \\boxed{5}", "5") == -1.0  # box only inside an unfinished think block
    assert simplerl("<think>a</think> \\boxed{5}", "5") == 1.0


def test_r1_zero_sums_accuracy_and_format(always_correct: list[str]) -> None:
    assert r1_zero("<think>add</think> <answer>5</answer>", "5") == 2.0
    assert r1_zero("<answer>5</answer>", "5") == 1.0
    assert r1_zero("<think>add</think> <answer>6</answer>", "5") == 2.0  # stub says correct
    assert r1_zero("<think>add</think> \\boxed{6}", "5") == 2.0


def test_r1_zero_with_real_verifier() -> None:
    assert r1_zero("<think>add</think> \\boxed{5}", "5") == 2.0
    assert r1_zero("<think>add</think> \\boxed{6}", "5") == 1.0
    assert r1_zero("\\boxed{6}", "5") == 0.0


def test_registry_has_one_signature() -> None:
    response = "<think>We add the two numbers.</think> \\boxed{5}"
    expected = {
        "accuracy": 1.0,
        "r1_format": 1.0,
        "r1_zero": 2.0,
        "deepscaler": 1.0,
        "simplerl": 1.0,
        "language_en": 1.0,
        "language_zh": 0.0,
    }
    assert {name: fn(response, "5") for name, fn in REWARDS.items()} == expected


def test_weighted_sum() -> None:
    reward = weighted_sum({"accuracy": 1.0, "language_en": 0.5})
    # CoT words: We, add, and (Latin) and 我, 们 (Han): language_en = 3/5
    assert reward("<think>We add 2 and 3, 我们</think> \\boxed{5}", "5") == pytest.approx(1.0 + 0.5 * 3 / 5)
    assert reward("<think>We add them.</think> \\boxed{6}", "5") == 0.5
    assert weighted_sum({})("anything", "5") == 0.0
    with pytest.raises(ValueError, match="no_such"):
        weighted_sum({"accuracy": 1.0, "no_such": 1.0})


# --- length shaping ---------------------------------------------------------------------------------------


def test_dapo_overlong_defaults() -> None:
    assert dapo_overlong(0) == 0.0
    assert dapo_overlong(16384) == 0.0  # L_max − L_cache: last unpunished length
    assert dapo_overlong(16385) == -1 / 4096
    assert dapo_overlong(18432) == -0.5  # midway through the cache
    assert dapo_overlong(20480) == -1.0  # L_max
    assert dapo_overlong(20481) == -1.0
    assert dapo_overlong(100_000) == -1.0


def test_dapo_overlong_custom() -> None:
    assert dapo_overlong(90, max_length=100, cache=20) == -0.5
    assert dapo_overlong(85, max_length=100, cache=20) == -0.25
    assert dapo_overlong(100, max_length=100, cache=0) == 0.0  # no buffer: a step at L_max
    assert dapo_overlong(101, max_length=100, cache=0) == -1.0
    with pytest.raises(ValueError):
        dapo_overlong(10, max_length=100, cache=200)


def test_cosine_length_correct_prefers_short() -> None:
    assert cosine_length(True, 0, 1000) == 2.0
    assert cosine_length(True, 500, 1000) == pytest.approx(1.5)
    assert cosine_length(True, 750, 1000) == pytest.approx(1 + 0.5 * (1 - math.sqrt(0.5)))  # ≈ 1.146
    assert cosine_length(True, 999, 1000) == pytest.approx(1.0, abs=1e-4)
    assert cosine_length(True, 1000, 1000) == -10.0  # hit the limit: exceed_length


def test_cosine_length_wrong_prefers_long() -> None:
    assert cosine_length(False, 0, 1000) == -10.0
    assert cosine_length(False, 250, 1000) == pytest.approx(-5 * (1 + math.sqrt(0.5)))  # ≈ −8.536
    assert cosine_length(False, 500, 1000) == pytest.approx(-5.0)
    assert cosine_length(False, 999, 1000) == pytest.approx(0.0, abs=1e-3)
    assert cosine_length(False, 1000, 1000) == -10.0
    assert cosine_length(False, 5000, 1000) == -10.0


def test_cosine_length_custom_bounds() -> None:
    assert cosine_length(True, 50, 100, r0_correct=1.0, rL_correct=0.5) == pytest.approx(0.75)
    assert cosine_length(False, 100, 100, exceed_length=-1.0) == -1.0
    with pytest.raises(ValueError):
        cosine_length(True, 0, 0)


def test_kimi_length_penalty() -> None:
    # lengths 100..300: λ = 0.5, 0.25, 0, −0.5; wrong answers keep only the negative part
    correct = [True, False, True, False]
    lengths = [100, 150, 200, 300]
    assert kimi_length_penalty(correct, lengths) == [0.5, 0.0, 0.0, -0.5]
    assert kimi_length_penalty([True, True, True, True], lengths) == [0.5, 0.25, 0.0, -0.5]
    assert kimi_length_penalty([False, True], [10, 30]) == [0.0, -0.5]  # short but wrong: no bonus


def test_kimi_length_penalty_degenerate_groups() -> None:
    assert kimi_length_penalty([True, False, True], [7, 7, 7]) == [0.0, 0.0, 0.0]
    assert kimi_length_penalty([], []) == []
    with pytest.raises(ValueError):
        kimi_length_penalty([True], [1, 2])


# --- language consistency ---------------------------------------------------------------------------------


def test_language_consistency_pure() -> None:
    assert language_consistency("We add the two numbers and get five.") == 1.0
    assert language_consistency("我们把两个数相加。", "zh") == 1.0
    assert language_consistency("我们把两个数相加。", "en") == 0.0


def test_language_consistency_mixed() -> None:
    # CoT words: First, compute, the, sum (Latin: 4) and 我, 们 (Han, one word per character: 2)
    text = "<think>First, 我们 compute the sum.</think> The answer is \\boxed{5}."
    assert language_consistency(text, "en") == pytest.approx(4 / 6)
    assert language_consistency(text, "zh") == pytest.approx(2 / 6)


def test_language_consistency_ignores_math() -> None:
    # words: Let, so (Latin) and 所, 以 (Han); the math span, \frac, the digits, π and the variable x are skipped
    text = "Let $x^2 + y = 1$ so 所以 x = \\frac{1}{2} π 3"
    assert language_consistency(text, "en") == 0.5
    assert language_consistency(text, "zh") == 0.5


def test_language_consistency_no_words_scores_zero() -> None:
    assert language_consistency("") == 0.0
    assert language_consistency("$1 + 1 = 2$ 42") == 0.0
    assert language_consistency("<think></think> Many English words after the think block.") == 0.0
    with pytest.raises(ValueError):
        language_consistency("hello", "xx")


def test_chain_of_thought() -> None:
    assert chain_of_thought("<think>a b</think> answer") == "a b"
    assert chain_of_thought("a b</think> answer") == "a b"  # <think> was in the prompt
    assert chain_of_thought("<think>a b, still going") == "a b, still going"
    assert chain_of_thought("no tags") == "no tags"


def test_rewards_import_without_torch() -> None:
    code = "import sys, rlvr.rewards.functions; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
