"""Property tests of the math verifier: any input gets a verdict within the time limit, one value written two ways
is graded equal, and the verdict on two numbers does not depend on which of them is the gold.

The equal writings are the ones `latex.py` and tests/test_verifier.py document: `p/q`, `\\frac`, `\\dfrac`, exact
decimals, mixed numbers, thousands separators, `x = 5`, the unicode minus, extra spaces. Left out on purpose: a
decimal comma (`0,4` is 0.4 as a prediction but two answers as a gold) and an implicit base (`204` for gold
`204_5`), asymmetric by design; a negative mixed number (`-2\\frac{1}{2}` reads as -2 * 1/2); a plain space as
thousands separator beside other text (`1 000` is 1000 only as the whole answer, as `latex.py` reads it).
"""

from __future__ import annotations

import time
from fractions import Fraction

from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from rlvr.rewards.math import Verdict, verify

LIMIT_S = 0.5  # verify's cooperative deadline in these tests
SLACK_S = 0.5  # on top of it: verify checks its deadline between steps, on a machine shared with other work
MB = 1_000_000

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True)


def timed_verify(response: str, gold: str, final_form: bool = False) -> Verdict:
    """verify, asserting it returns a well-formed verdict in time and without an internal exception."""
    start = time.monotonic()
    v = verify(response, gold, timeout_s=LIMIT_S, final_form=final_form)
    elapsed = time.monotonic() - start
    assert elapsed < LIMIT_S + SLACK_S, f"{elapsed:.2f}s for {response[:200]!r} against {gold[:200]!r}"
    assert isinstance(v, Verdict) and isinstance(v.correct, bool)
    assert not v.reason.startswith("error"), v.reason  # verify swallows exceptions; a swallowed one is a bug
    return v


# -- any input -------------------------------------------------------------------------------------------------------

# LaTeX, unicode maths, non-ASCII digits, cues and tags (whitespace-separated)
_PIECES = r"""
\frac \dfrac \sqrt \sqrt[3] ^ _ { } \{ \} ( ) [ ] | \left( \right) \left[ \right] \boxed{ \boxed \fbox{ \text{
\mathrm{ $ $$ \( \) \[ \] \pi \infty \cdot \times \div \pm \cup \le \ne \approx = , ; : % \% ! ' & \\ \! \, {,}
\begin{pmatrix} \end{pmatrix} \begin{array}{cc} \end{array} \int \sum_{k=0}^{n} \log_2 \ln \sin \binom ^\circ
x y i e 0 1 2 9 . - + / * ** A (C) #### <think> </think> <answer> </answer>
− – × ÷ · √ π ∞ ± ≤ ° ² ½ ٣ ３ 𝟚 ٫
"""
# huge values: each must be refused cheaply, never computed
_HUGE = r"""
10^{10^{10}} 9^9^9^9 2**99999999 2^{99999999} (10^{100})! 5^{5^{5^{5^5}}} 1/0 \binom{5000}{2500} 2^{-99999}
0^{-1} e^{10^{10}} \sqrt[64]{2} (-8)^{1/3} 10^{-400} 1e308 \tan(10^{7}) \sin^{99999} \log_{1} 7^{12345678}
10^{10^{7}} (-1)^{10^{100}} 0.5^{99999999} \frac{1}{2^{99999}} 10^{400}
"""
FRAGMENTS = [
    *_PIECES.split(),
    *_HUGE.split(),
    *(" ", "\n", "\n\n", "\u00a0", " and ", " or ", "\\text{ cm}", "9" * 400, "0." + "3" * 300),
    *("The final answer is ", "Answer: ", "I hope it is correct."),
]

fragment = st.sampled_from(FRAGMENTS)
numeral = st.one_of(st.integers(-(10**40), 10**40).map(str), st.decimals(allow_nan=False).map(str))
junk = st.lists(st.one_of(fragment, fragment, st.text(max_size=6), numeral), max_size=50).map("".join)


def _wrap(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    pair = st.tuples(inner, inner)
    return st.one_of(
        inner.map(lambda s: "{" + s + "}"),
        inner.map(lambda s: "\\left(" + s + "\\right)"),
        inner.map(lambda s: "\\sqrt{" + s + "}"),
        inner.map(lambda s: "-" + s),
        inner.map(lambda s: s + "!"),
        pair.map(lambda ab: f"\\frac{{{ab[0]}}}{{{ab[1]}}}"),
        pair.map(lambda ab: f"{ab[0]}^{{{ab[1]}}}"),
        pair.map(lambda ab: f"{ab[0]}^{ab[1]}"),
        pair.map(lambda ab: f"{ab[0]}_{{{ab[1]}}}"),
        pair.map(lambda ab: f"{ab[0]} + {ab[1]}"),
        pair.map(lambda ab: f"{ab[0]}{ab[1]}"),
        pair.map(lambda ab: f"{ab[0]}, {ab[1]}"),
        pair.map(lambda ab: f"{ab[0]} = {ab[1]}"),
    )


# well-formed LaTeX, nested deep: power towers, fractions of roots, lists of factorials
huge = st.sampled_from(_HUGE.split())
latex = st.recursive(
    st.one_of(huge, fragment, numeral, st.sampled_from(["x", "n", "\\pi", "9", "10"])), _wrap, max_leaves=40
)
text = st.one_of(junk, latex, st.text(max_size=40))


@st.composite
def responses(draw: st.DrawFn) -> str:
    body = draw(text)
    template = draw(
        st.sampled_from(
            ["{}", "\\boxed{{{}}}", "So the answer is $\\boxed{{{}}}$.", "<think>{}</think> \\boxed{{{}}}"]
        )
    )
    return template.format(body, draw(text))


@PROPERTY
@given(responses(), st.one_of(numeral, latex, text), st.booleans())
@example("\\boxed{.0}", "9" * 400, False)  # was OverflowError: a float tolerance times a 400-digit number
@example("\\boxed{10^{400}}", "\\sqrt{2}", False)  # was OverflowError: 10^400 as a float
def test_any_input_gets_a_verdict_in_time(response: str, gold: str, final_form: bool) -> None:
    timed_verify(response, gold, final_form=final_form)


# str.format templates for a base {b} and an exponent {e}, whitespace-separated
_POWER_FORMS = r"""
{b}^{{{e}}} {b}^{e} \left({b}\right)^{{{e}}} {b}**{e} ({b}^{{{e}}})! {b}^{{-{e}}} \sqrt[3]{{{b}^{{{e}}}}}
{b}^{{{b}^{{{e}}}}} \frac{{1}}{{{b}^{{{e}}}}} {b}^{{{e}}}-{b}^{{{e}}} 2^{{{e}}}\cdot{{{b}}}
"""


@st.composite
def huge_powers(draw: st.DrawFn) -> str:
    """A power far too large to compute, written one of many ways: it must be refused, never evaluated."""
    base = draw(
        st.integers(2, 10**6).map(str) | st.sampled_from(["1.5", "\\frac{3}{2}", "-7", "x", "\\pi", "0.9"])
    )
    exp = draw(st.integers(10**5, 10**15))
    return draw(st.sampled_from(_POWER_FORMS.split())).format(b=base, e=exp)


@PROPERTY
@given(huge_powers(), huge_powers() | numeral | st.sampled_from(["x", "0", "1", "x^2 + 1", "\\infty"]))
def test_huge_powers_are_refused_in_time(power: str, gold: str) -> None:
    timed_verify(f"\\boxed{{{power}}}", gold)


piece = st.lists(st.one_of(fragment, numeral, st.text(max_size=3)), min_size=1, max_size=4).map("".join)


def _megabyte(piece: str) -> str:
    return (piece * (MB // len(piece) + 1))[:MB]


@settings(PROPERTY, max_examples=30)
@given(piece.filter(bool), text, st.booleans())
def test_megabyte_responses_get_a_verdict_in_time(piece: str, other: str, boxed: bool) -> None:
    big = _megabyte(piece)
    response = f"\\boxed{{{big}}}" if boxed else big + f" \\boxed{{{other}}}"
    timed_verify(response, other)


@settings(PROPERTY, max_examples=30)
@given(piece.filter(bool), text)
@example("\\text{", "5")  # was 27 s: normalising the whole gold
@example("1 ", "5")  # was ValueError: a 500,000-digit int
def test_megabyte_golds_get_a_verdict_in_time(piece: str, other: str) -> None:
    """A broken dataset row must cost its own rewards, not stall the trainer."""
    timed_verify(f"\\boxed{{{other}}}", _megabyte(piece))


# -- one value, written two ways -------------------------------------------------------------------------------------


def _decimal(v: Fraction) -> str | None:
    """`v` as an exact decimal numeral, None when its expansion does not end."""
    d, twos, fives = v.denominator, 0, 0
    while d % 2 == 0:
        d, twos = d // 2, twos + 1
    while d % 5 == 0:
        d, fives = d // 5, fives + 1
    if d != 1:
        return None
    places = max(twos, fives)
    whole, frac = divmod(abs(v.numerator) * 10**places // v.denominator, 10**places)
    sign = "-" if v < 0 else ""
    return f"{sign}{whole}.{frac:0{places}d}" if places else f"{sign}{whole}"


def _thousands(n: int, sep: str) -> str:
    digits = f"{abs(n):,}".replace(",", sep)
    return ("-" if n < 0 else "") + digits


@st.composite
def writings(draw: st.DrawFn, v: Fraction) -> str:
    """One of the documented ways to write the value `v`."""
    k = draw(st.integers(1, 12))  # fractions need not be in lowest terms
    num, den = v.numerator * k, v.denominator * k
    forms = [
        f"{num}/{den}",
        f"{num} / {den}",
        f"\\frac{{{num}}}{{{den}}}",
        f"\\dfrac{{{num}}}{{{den}}}",
        f"\\tfrac{{ {num} }}{{ {den} }}",
        f"\\left( {num} \\right) / {den}",
    ]
    if v < 0:
        forms += [f"-\\frac{{{-num}}}{{{den}}}", f"\\frac{{{-num}}}{{-{den}}}", f"-{-num}/{den}"]
    decimal = _decimal(v)
    if decimal is not None:
        forms += [decimal, decimal + ("0" if "." in decimal else ".0")]
    if v.denominator == 1:
        n = int(v)
        forms += [
            str(n),
            _thousands(n, ","),
            _thousands(n, "{,}"),
            _thousands(n, ",\\!"),
            _thousands(n, "\\,"),
        ]
        if n and n % 100 == 0:
            forms.append(f"{n // 100} \\times 10^{{2}}")
    elif v > 1:
        whole = v.numerator // v.denominator
        part = v - whole
        forms.append(f"{whole}\\frac{{{part.numerator}}}{{{part.denominator}}}")  # mixed number
    form = draw(st.sampled_from(forms))
    if draw(st.booleans()):
        form = draw(st.sampled_from(["x = {}", "x={}", "\\; {} \\;", "$ {} $", "{}."])).format(form)
    elif v.denominator == 1 and draw(st.booleans()):
        form = _thousands(int(v), " ")  # `1 000`: documented only as the whole answer
    if draw(st.booleans()):
        form = form.replace("-", "−")  # the unicode minus
    return form


values = st.one_of(  # whole numbers (thousands separators), exact decimals, any fraction
    st.integers(-(10**9), 10**9).map(Fraction),
    st.builds(
        lambda p, a, b: Fraction(p, 2**a * 5**b),
        st.integers(-(10**7), 10**7),
        st.integers(0, 6),
        st.integers(0, 6),
    ),
    st.builds(Fraction, st.integers(-(10**7), 10**7), st.integers(1, 2000)),
)
boxed = st.sampled_from(
    ["\\boxed{{{}}}", "The answer is $\\boxed{{{}}}$.", "<think>hmm</think>\n\n\\boxed{{ {} }}"]
)


@PROPERTY
@given(st.data(), values, boxed)
def test_one_value_written_two_ways_is_equal(data: st.DataObject, v: Fraction, template: str) -> None:
    pred, gold = data.draw(writings(v), "pred"), data.draw(writings(v), "gold")
    verdict = timed_verify(template.format(pred), gold)
    assert verdict.correct, (pred, gold, verdict)


def test_thin_space_thousands_beside_other_text() -> None:
    """Found by the property above: `1\\,000` was 1000 only as the whole answer."""
    assert timed_verify("\\boxed{x = 1\\,000}", "1000").correct
    assert timed_verify("\\boxed{1\\,000 \\text{ cm}}", "1000").correct


@PROPERTY
@given(st.data(), values, values)
def test_different_values_are_not_equal(data: st.DataObject, v: Fraction, w: Fraction) -> None:
    assume(abs(v - w) > Fraction(1, 10**5) * max(abs(v), abs(w)))  # decimals are equal within a tolerance
    pred, gold = data.draw(writings(v), "pred"), data.draw(writings(w), "gold")
    verdict = timed_verify(f"\\boxed{{{pred}}}", gold)
    assert not verdict.correct, (pred, gold, verdict)


# -- symmetry --------------------------------------------------------------------------------------------------------

# few values, so that a pair is often equal; roots, pi, percents and rounded decimals beside the exact writings
small = st.builds(Fraction, st.integers(-12, 12), st.sampled_from([1, 2, 3, 4, 5, 8, 10]))


@st.composite
def numbers(draw: st.DrawFn) -> str:
    v = draw(small)
    kind = draw(st.sampled_from(["exact", "exact", "rounded", "percent", "root", "pi"]))
    if kind == "exact":
        return draw(writings(v))
    if kind == "rounded":
        return f"{float(v):.{draw(st.integers(0, 9))}f}"
    if kind == "percent":
        return f"{_decimal(v * 100) or float(v * 100)}\\%"
    n = abs(v.numerator)
    if kind == "root":
        return f"{v.denominator}\\sqrt{{{n}}}" if draw(st.booleans()) else f"\\sqrt{{{n * n}}}"
    return f"\\frac{{{v.numerator}\\pi}}{{{v.denominator}}}"


@PROPERTY
@given(numbers(), numbers())
def test_verdict_does_not_depend_on_which_is_the_gold(a: str, b: str) -> None:
    ab = timed_verify(f"\\boxed{{{a}}}", b)
    ba = timed_verify(f"\\boxed{{{b}}}", a)
    assert ab.correct == ba.correct, (a, b, ab, ba)
