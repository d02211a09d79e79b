"""The math verifier on cases this project writes itself: extraction, equivalence, reward-hack guards, time limits."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from rlvr.rewards.extract import extract
from rlvr.rewards.math import is_equivalent, verify

# -- extraction ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "answer"),
    [
        ("so \\boxed{\\frac{1}{2}} is it", "\\frac{1}{2}"),
        ("nested \\boxed{\\{1, \\{2\\}\\}} end", "\\{1, \\{2\\}\\}"),
        ("the value is \\boxed 5.", "5."),
        ("we get \\fbox{7}", "7"),
        ("<think>\\boxed{1}</think> <answer>42</answer>", "42"),
        ("<think>x</think><answer>so \\boxed{3}</answer>", "3"),
        ("Final Answer: The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}"),
        ("Therefore the final answer is 12.", "12"),
        ("I'm confident that the answer is 9 customers.", "9 customers"),
        ("<think>long \\boxed{1} thought</think>The result is \\boxed{2}.", "2"),
        ("2 + 2 = $4$ in the end", "4"),
        ("we get 17 apples", "17"),
        ("1 000", "1 000"),
    ],
)
def test_extract(response: str, answer: str) -> None:
    found = extract(response)
    assert found.problem == ""
    assert found.answers[-1] == answer


def test_extract_problems() -> None:
    assert extract("<think>the answer is \\boxed{5}").problem == "unfinished_think"
    assert extract("so \\boxed{}").problem == "empty_box"
    assert extract("no numbers here at all").problem == "no_answer"
    assert extract("we get 17 apples", fallback="none").problem == "no_answer"
    assert extract("AZYUK2A").problem == "no_answer"  # digits inside a word are not a number


def test_extract_reads_only_the_tail() -> None:
    response = "\\boxed{1}" + "x" * 1_000_000 + " so \\boxed{2}"
    assert extract(response).answers == ["2"]


# -- equivalence -----------------------------------------------------------------------------------------------------

EQUAL = [
    ("\\frac12", "1/2"),
    ("\\dfrac{3}{4}", "0.75"),
    ("2\\frac{1}{2}", "5/2"),  # mixed number
    ("50\\%", "50"),
    ("0.5", "50\\%"),
    ("1.5 \\times 10^{3}", "1500"),
    ("1,000", "1000"),
    ("10,\\!000", "10000"),
    ("1\\,000", "1000"),
    ("5 \\text{ cm}^2", "5"),
    ("90^\\circ", "90"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\pi}{2}", "\\pi/2"),
    ("x^2+2x+1", "(x+1)^2"),
    ("x=3", "3"),
    ("y = 2x + 1", "2x+1"),
    ("2x+4y-3=0", "y=-\\frac{1}{2}x+\\frac{3}{4}"),
    ("[0, 1)", "[0,1)"),
    ("(-\\infty, 2] \\cup (3, \\infty)", "(3,\\infty)\\cup(-\\infty,2]"),
    ("x \\ge 5", "[5, \\infty)"),
    ("\\{3, 1, 2\\}", "1,2,3"),
    ("(1, 2)", "(1,2)"),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}"),
    ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "(1, 2)"),
    ("\\infty", "\\infty"),
    ("1+2i", "(1+i)^2 + 1"),
    ("\\text{(C)}", "C"),
    ("\\text{Evelyn}", "Evelyn"),
    ("1 \\pm \\sqrt{2}", "1+\\sqrt2, 1-\\sqrt2"),
    ("\\tan^2 y + 1", "\\sec^2 y"),
    ("204_5", "204_{5}"),
    ("7, -2, \\text{ and } -5", "-5, -2, 7"),
    ("1,22", "1.22"),  # a decimal comma in the prediction
    ("40", "40\\text{ min}"),  # a unit that is also a function name
    ("8.24", "\\approx 8.24 \\text{ mph}"),
    ("\\min(3, 4)", "3"),
]

NOT_EQUAL = [
    ("1/2^{99}", "1/2^{98}"),  # exact rationals: a float would call these equal
    ("(0, 1)", "[0, 1)"),
    ("(1, 2)", "(2, 1)"),
    ("5 \\text{ or } 6", "5"),  # several answers offered for one value
    ("5, 6", "5"),
    ("\\pm 3", "3"),
    ("x < 5", "x > 5"),
    ("7 = 11a+c", "11a+c"),
    ("x^2+2x+1", "x^3+2x+1"),
    ("5.001", "5"),
    ("\\sqrt{2}", "1.414"),
    ("C", "D"),
    ("\\text{odd}", "\\text{oddd}"),
    ("5^{5^{5^{5^5}}}", "5^{5^{5^{5^4}}}"),
    ("0.4", "0,4"),  # a gold `0,4` is two answers, not a decimal comma
    ("0, 1", "[0, 1)"),  # an answer list is not a half-open interval
    ("40_9", "40"),  # 40 in base 9 is 36
]


@pytest.mark.parametrize(("pred", "gold"), EQUAL)
def test_equal(pred: str, gold: str) -> None:
    assert is_equivalent(pred, gold)
    assert is_equivalent(gold, pred)


@pytest.mark.parametrize(("pred", "gold"), NOT_EQUAL)
def test_not_equal(pred: str, gold: str) -> None:
    assert not is_equivalent(pred, gold)


def test_decimal_tolerance_is_configurable() -> None:
    assert not is_equivalent("0.3333", "1/3")
    assert is_equivalent("0.3333", "1/3", rel_tol=1e-3)


# -- verify: verdicts and reward-hack guards -------------------------------------------------------------------------


def test_verify_correct_and_reason() -> None:
    v = verify("Thus the answer is $\\boxed{\\frac{3}{6}}$.", "\\frac12")
    assert v.correct and v.extracted == "\\frac{3}{6}" and v.reason.startswith("equal")


@pytest.mark.parametrize(
    ("response", "reason"),
    [
        ("The answer is \\boxed{5}. Actually I think it is \\boxed{6}.", "multiple_answers"),
        ("<think>I am sure it is \\boxed{5}</think>", "no_answer"),
        ("<think>I am sure it is \\boxed{5}", "unfinished_think"),
        ("\\boxed{5} \\boxed{}", "empty_box"),
        ("\\boxed{5 \\text{ or } 6}", "not_equal"),
        ("\\boxed{5} or \\boxed{6}", "not_equal"),
    ],
)
def test_reward_hacks_are_refused(response: str, reason: str) -> None:
    v = verify(response, "5")
    assert not v.correct
    assert v.reason == reason


def test_boxed_intermediate_results_do_not_count() -> None:
    response = "First \\boxed{3} is the width.\n\nSo the area is \\boxed{12}."
    assert verify(response, "12").correct
    assert not verify(response, "3").correct


def test_boxes_joined_by_and_form_a_list() -> None:
    assert verify("so $\\boxed{1}$ and $\\boxed{2}$", "1, 2").correct


def test_verify_never_raises() -> None:
    for junk in [
        "",
        "\\boxed{",
        "}}}{{{",
        "\\boxed{\\frac{}{}}",
        "\\boxed{1/0}",
        "\x00\x01",
        "\\boxed{" + "(" * 900,
    ]:
        v = verify(junk, junk)
        assert isinstance(v.correct, bool)


# -- time limits -----------------------------------------------------------------------------------------------------

ADVERSARIAL = {
    "power tower": ("\\boxed{5^{5^{5^{5^5}}}}", "3"),
    "ten tower": ("\\boxed{10^{10^{10^{10}}}}", "10^{10^{10^{10}}}+1"),
    "huge factorial": ("\\boxed{(10^{100})!}", "5"),
    "1 MB of text": ("x " * 500_000 + "\\boxed{5}", "5"),
    "1 MB without an answer": ("1 " * 500_000, "5"),
    "1000 boxes": (" ".join(f"\\boxed{{{i}}}" for i in range(1000)), "999"),
    "deep braces": ("\\boxed{" + "{" * 5000 + "1" + "}" * 5000 + "}", "1"),
    "unbalanced braces": ("\\boxed{" + "{" * 100_000, "1"),
    "deep parentheses": ("\\boxed{" + "(" * 500 + "1" + ")" * 500 + "}", "1"),
    "unclosed display math": ("\\[ a " * 5000, "1"),
    "unclosed answer tags": ("<answer>" * 20000, "1"),
    "long list": ("\\boxed{" + ",".join(f"x^{i}+{i}" for i in range(60)) + "}", "1"),
    "random unicode": (
        "\\boxed{" + "".join(chr(0x20 + (i * 7919) % 0x2FFDF) for i in range(1500)) + "}",
        "1",
    ),
}
LIMIT_S = 0.5
SLACK_S = 0.25


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_adversarial_inputs_stay_within_the_limit(name: str) -> None:
    response, gold = ADVERSARIAL[name]
    start = time.perf_counter()
    v = verify(response, gold, timeout_s=LIMIT_S)
    assert time.perf_counter() - start < LIMIT_S + SLACK_S
    assert isinstance(v.correct, bool)


def test_time_limit_holds_in_threads() -> None:
    """A signal alarm works only in the main thread; rlvr's limit must hold in worker threads too."""

    def run(name: str) -> float:
        start = time.perf_counter()
        verify(*ADVERSARIAL[name], timeout_s=LIMIT_S)
        return time.perf_counter() - start

    with ThreadPoolExecutor(4) as pool:
        times = list(pool.map(run, sorted(ADVERSARIAL)))
    assert max(times) < (LIMIT_S + SLACK_S) * 4  # 4 threads share one GIL


def test_timeout_is_reported_as_incorrect() -> None:
    v = verify("\\boxed{" + ",".join(f"x^{i}+{i}" for i in range(60)) + "}", "x", timeout_s=0.0)
    assert not v.correct and v.reason.startswith("timeout")


def test_import_without_torch() -> None:
    code = "import sys; sys.modules['torch'] = None; import rlvr.rewards; print(rlvr.rewards.verify('\\\\boxed{1}', '1'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "correct=True" in out
