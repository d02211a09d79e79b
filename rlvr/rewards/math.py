"""Math answer verification: is the final answer of a response equal to the gold answer?

`verify(response, gold)` extracts the answer (see `extract.py`), refuses reward hacks, and compares it with the gold:
a string fast path, a number fast path, then the parser and the equivalence rules of `compare.py`. Gold parses are
cached. It never raises and never runs past its time limit: every step is bounded in size, and the symbolic part
checks a cooperative deadline at every tree node, so the limit holds in any thread or process (a signal alarm holds
only in the main thread). For a kill-based limit on top, grade through `rlvr.rewards.pool`.

Reward-hack guards (each an incorrect verdict with its reason):
- several different final answers (`\\boxed{5}` … `\\boxed{6}`) when the gold is one value: "multiple_answers";
- a list offered for one value (`5 \\text{ or } 6`): not equal, as a list is never a scalar;
- an answer only inside `<think>` (no `</think>`): "unfinished_think"; an empty box: "empty_box";
- with `final_form=True` (arithmetic and word-problem sets), arithmetic on literals left undone (`9 + 73`,
  `\\boxed{984+911}`) against a numeric gold: "unevaluated". Without it, echoing "457+68" wins on an addition task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from rlvr.rewards.compare import Comparer
from rlvr.rewards.evaluate import Deadline, TimeLimit
from rlvr.rewards.extract import MAX_ANSWER_CHARS, TAIL_CHARS, extract, find_boxes
from rlvr.rewards.forms import is_number, is_unevaluated, resolve
from rlvr.rewards.latex import normalize, squash
from rlvr.rewards.parse import Node, ParseError, parse

DEFAULT_TIMEOUT_S = 1.0
DEFAULT_REL_TOL = (
    1e-6  # for answers written with decimals (the Qwen2.5-Math harness uses 1e-4; see compare.py)
)

_NUMBER = re.compile(r"-?(?:\d+\.?\d*|\.\d+)")
_CHOICE_GOLD = re.compile(r"^\(?([A-J])\)?$")
_CHOICE_PRED = re.compile(r"^\(?([A-Ja-j])(?:\)|\.|:|$)(?:\s.*)?$", re.S)
_DECIMAL_COMMA = re.compile(r"^(-?\d+),(\d+)$")
_GAP_FILLER = re.compile(r"\\text\s*\{|\\quad|\\qquad|\\[(),;]|\\\\|[${}\s]|\\[\[\]]")
_GAP_SEPARATOR = re.compile(r"(?:^|[^a-z])(?:and|or)(?:$|[^a-z])|[,;]", re.I)


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of grading one response."""

    correct: bool
    extracted: str | None  # the answer taken from the response (None: nothing usable found)
    reason: (
        str  # "equal:<how>", "not_equal", "no_answer", "timeout", "multiple_answers", "unfinished_think", ...
    )


def verify(
    response: str,
    gold: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    think: bool = True,
    fallback: str | None = None,
    rel_tol: float = DEFAULT_REL_TOL,
    final_form: bool = False,
) -> Verdict:
    """Grade `response` against `gold`. Never raises; returns within `timeout_s` plus a few milliseconds.

    think: read only the text after `</think>` when a think block is present (an unfinished one has no answer).
    fallback: where to look when there is no box, `<answer>` or "final answer is": "last_math" ($…$ span, then the
    last number), "last_number", "conclusion" (the value the finished last sentences state) or "none"; None:
    "conclusion" under final_form, else "last_math".
    final_form: the answer must be a number when the gold is one: `9 + 73` for 82 is "unevaluated", not equal.
    """
    deadline = Deadline(timeout_s)
    extracted: str | None = None
    try:
        if fallback is None:
            fallback = "conclusion" if final_form else "last_math"
        found = extract(response, think=think, fallback=fallback)
        if found.problem:
            return Verdict(False, found.answers[-1] if found.answers else None, found.problem)
        gold_text = gold_answer(gold)
        answers, gaps = _last_paragraph(found.answers, found.gaps)
        answer = _combine(answers, gaps)
        extracted = answer if answer is not None else found.answers[-1]
        if (
            answer is None
        ):  # different boxes with prose between them: the last one counts only for a list gold
            if not _is_list(gold_text):
                return Verdict(False, extracted, "multiple_answers")
            answer = found.answers[-1]
        if final_form and _unevaluated(answer, gold_text):
            return Verdict(False, extracted, "unevaluated")
        how = _equivalent(answer, gold_text, deadline, rel_tol)
        return Verdict(bool(how), extracted, f"equal:{how}" if how else "not_equal")
    except TimeLimit:
        return Verdict(False, extracted, f"timeout: over {timeout_s:g}s")
    except Exception as e:  # a grader bug must cost one reward, never the training job
        return Verdict(False, extracted, f"error: {type(e).__name__}")


def is_equivalent(
    pred: str, gold: str, *, timeout_s: float = DEFAULT_TIMEOUT_S, rel_tol: float = DEFAULT_REL_TOL
) -> bool:
    """Compare two already-extracted answers (no extraction, no guards). Never raises."""
    try:
        return bool(_equivalent(pred, gold_answer(gold), Deadline(timeout_s), rel_tol))
    except Exception:
        return False


def is_gradable(gold: str) -> bool:
    """Can rlvr grade against this gold: it parses (or is plain text) and equals itself. Never raises."""
    try:
        text = gold_answer(gold)
        return (
            bool(text)
            and (_parse(text) is not None or bool(_CHOICE_GOLD.match(normalize(text))))
            and is_equivalent(text, text)
        )
    except Exception:
        return False


def gold_answer(gold: str) -> str:
    """The gold as an answer string: boxes inside it are unwrapped (several boxes make a list)."""
    gold = str(gold).strip()
    if "\\boxed" in gold or "\\fbox" in gold:
        boxes, gaps = find_boxes(gold[-TAIL_CHARS:])  # as in a response, the final answer is in the tail
        if boxes:
            combined = _combine(boxes, gaps)
            return combined if combined is not None else boxes[-1]
    return gold


def _combine(answers: list[str], gaps: list[str]) -> str | None:
    """One answer from several boxes: equal boxes are one answer, boxes joined by "and" / "," form a list.

    Returns None when the boxes state different answers with prose between them (the caller decides).
    """
    if len(answers) == 1:
        return answers[0]
    distinct = {squash(a) for a in answers}
    if len(distinct) == 1:
        return answers[-1]
    if all(_is_separator(g) for g in gaps):
        return ", ".join(answers)
    return None


def _unevaluated(answer: str, gold: str) -> bool:
    """Is `answer` arithmetic left undone (`9 + 73`, `3 \\cdot 4`) while the gold is a number? `x = 9 + 73 = 82`
    states 82 and passes. A written `+` rules out reading `2 + \\frac{1}{2}` as the mixed number 2½."""
    node, gold_node = _parse(answer), _parse(gold)
    if node is None or gold_node is None or not is_number(resolve(gold_node)):
        return False
    return is_unevaluated(resolve(node), mixed="+" not in normalize(answer))


def _last_paragraph(answers: list[str], gaps: list[str]) -> tuple[list[str], list[str]]:
    """The boxes of the paragraph holding the last box: intermediate results boxed earlier are not final answers."""
    k = len(answers) - 1
    while k > 0 and "\n\n" not in gaps[k - 1]:
        k -= 1
    return answers[k:], gaps[k:]


def _is_separator(gap: str) -> bool:
    rest = _GAP_FILLER.sub("", gap)
    if not rest:
        return True
    if len(gap) > 60 or "\n\n" in gap:
        return False
    return bool(_GAP_SEPARATOR.search(gap)) or not re.search(r"[A-Za-z]", rest)


def _is_list(gold: str) -> bool:
    node = _parse(gold)
    return node is not None and node[0] in ("list", "set")


@lru_cache(maxsize=1 << 16)
def _parse(text: str) -> Node | None:
    """Parse a raw answer string (cached: golds repeat across the n samples of a prompt). None if unparsable."""
    if len(text) > MAX_ANSWER_CHARS:
        return None
    try:
        return parse(normalize(text))
    except (ParseError, RecursionError, ValueError, ZeroDivisionError):
        return None


@lru_cache(maxsize=1 << 16)
def _squash(text: str) -> str:
    return squash(text)


def _equivalent(pred: str, gold: str, deadline: Deadline, rel_tol: float) -> str:
    """How the two answers are equal ("string", "number", "choice", "math"), or "" when they are not."""
    if len(pred) > MAX_ANSWER_CHARS or len(gold) > MAX_ANSWER_CHARS:  # normalising 1 MB takes seconds
        return "string" if pred.strip() == gold.strip() else ""
    sp, sg = _squash(pred), _squash(gold)
    if sp == sg and sp:
        return "string"
    if _NUMBER.fullmatch(sp) and _NUMBER.fullmatch(sg):
        a, b = Fraction(sp), Fraction(sg)
        if a == b:
            return "number"
        loose = "." in sp or "." in sg
        # exact: a float tolerance times a 400-digit Fraction overflows
        return "number" if loose and abs(a - b) <= Fraction(rel_tol) * max(abs(a), abs(b)) else ""
    for letter, said in ((gold, pred), (pred, gold)):  # a choice letter: "C" against "(C)", "C. x = 42"
        choice = _CHOICE_GOLD.match(normalize(letter))
        picked = _CHOICE_PRED.match(normalize(said)) if choice else None
        if choice and picked:
            return "choice" if picked.group(1).upper() == choice.group(1) else ""
    node_g, node_p = _parse(gold), _parse(pred)
    if node_g is None or node_p is None:
        return ""
    comparer = Comparer(deadline, rel_tol)
    if comparer.equal(node_p, node_g):
        return "math"
    # A decimal comma (1,22 for 1.22). A gold `0,4` is more likely two answers, so on the gold side only with 2+ digits.
    for text, other, min_digits in ((sp, node_g, 1), (sg, node_p, 2)):
        comma = _DECIMAL_COMMA.match(text)
        if comma and len(comma.group(2)) >= min_digits and other[0] == "num":
            alt = _parse(f"{comma.group(1)}.{comma.group(2)}")
            if alt is not None and comparer.equal(alt, other):
                return "math"
    return ""
