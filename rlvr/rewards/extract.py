"""Find the final answer in a model response.

What counts as "the answer", in order: the content of the last `<answer>…</answer>` (R1-Zero), all `\\boxed{}` /
`\\fbox{}` groups (the caller decides what several boxes mean), "final answer is …" / Minerva's
"Final Answer: The final answer is … . I hope it is correct.", then a configurable fallback (the last `$…$` math span,
or the last number). When a `<think>` block is present only the text after `</think>` is read; an unfinished think
block has no answer. Only the tail of a huge response is read: final answers sit at the end, and reading the whole
of a 1 MB response would make one reward call cost milliseconds.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

from rlvr.rewards.stated import conclusion, leading_value

TAIL_CHARS = 16_000  # how much of the answer region is read; final answers live at the end
SEARCH_CHARS = 3_000  # "final answer is" and the fallback look only here: their regexes are not linear
MAX_ANSWER_CHARS = 2_000  # an "answer" longer than this is not an answer
FALLBACKS = ("last_math", "math_span", "last_number", "conclusion", "none")

_BOX = re.compile(r"\\(?:boxed|fbox)\b\s*")
# An answer stated in words: "final answer is", Minerva's "Final Answer: The final answer is", "the answer is",
# "Answer: 18" opening a line, GSM8K's "#### 18". The last cue in the text wins.
_CUE = re.compile(
    r"(?:final answer is|final answer\W{0,3}:|the answer is|answer is\s*:|^[\W_]{0,6}answer\W{0,3}:"
    r"|^[ \t]*####(?=\s*[-$\d.]))\s*(?:the final answer is)?\s*:?\s*",
    re.I | re.M,
)
_CUE_REACH = (
    32  # a cue starts at most this far before its "answer" / "####" and ends within twice that after it
)
_HOPE = re.compile(r"\.?\s*I hope it is correct.*$", re.I | re.S)
# display math may span lines; inline math may not (a stray `$` must not swallow a paragraph)
_MATH_SPAN = re.compile(
    r"(?<!\\)\$\$(.+?)(?<!\\)\$\$|(?<!\\)\$((?:[^\n$]|\\\$)+?)(?<!\\)\$|\\\(([^\n]+?)\\\)|\\\[(.+?)\\\]", re.S
)
_NUMBER = re.compile(
    r"(?<![A-Za-z\d.])-?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+,\d{1,2}(?!\d)|\d+(?:\.\d+)?)(?:/\d+)?(?!\d)|-?\.\d+"
)
_PROSE = re.compile(r"(?<![\\A-Za-z])(?!(?:and|or)(?![A-Za-z]))[A-Za-z]{3,}")  # words, not commands
_HEDGE_WORD = re.compile(r"^(?:indeed|simply|just|clearly|actually|still|exactly)\s+(?=[-$\d.])", re.I)
_WORD = re.compile(r"(?<![\\A-Za-z])(?!(?:and|or)(?![A-Za-z]))[A-Za-z]{2,}")  # "So 5 + 4 = 9." is a sentence
_SHORT_ANSWER = 40  # a response region this short and without words is itself the answer


@dataclass(frozen=True, slots=True)
class Extraction:
    """Answer candidates found in a response; `problem` names why there is no usable answer."""

    answers: list[str] = field(default_factory=list)  # the boxes (or the single extracted answer), in order
    gaps: list[str] = field(default_factory=list)  # the text between consecutive boxes
    how: str = ""  # "boxed", "answer_tag", "final_answer", "last_math", "last_number"
    problem: str = ""  # "", "no_answer", "unfinished_think", "empty_box"


def answer_region(text: str, think: bool = True) -> tuple[str, str]:
    """The part of `text` that may hold the final answer, and a problem string ("" when fine)."""
    if think:
        close = text.rfind("</think>")
        if close >= 0:
            text = text[close + len("</think>") :]
        elif "<think>" in text:
            return "", "unfinished_think"
    return text[-TAIL_CHARS:], ""


def _braced(text: str, start: int) -> int:
    """Index just past the `}` closing the `{` at `start`; -1 when unbalanced. `\\{` and `\\}` are not braces."""
    depth = 0
    i = start
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


def find_boxes(text: str) -> tuple[list[str], list[str]]:
    """Contents of every balanced `\\boxed{…}` / `\\fbox{…}` (and `\\boxed 5`), plus the text between them."""
    boxes: list[str] = []
    gaps: list[str] = []
    pos = 0
    last_end = -1
    while True:
        m = _BOX.search(text, pos)
        if m is None:
            break
        i = m.end()
        if i < len(text) and text[i] == "{":
            end = _braced(text, i)
            if end < 0:  # unbalanced: nothing usable after this point
                break
            content = text[i + 1 : end - 1]
        else:
            stop = re.match(r"[^\s$]*", text[i:])
            content = stop.group(0) if stop else ""
            end = i + len(content)
            if not content:
                pos = end + 1
                continue
        if last_end >= 0:
            gaps.append(text[last_end : m.start()])
        boxes.append(content.strip())
        last_end = end
        pos = end
    return boxes, gaps


def _last(matches: Iterator[re.Match[str]]) -> re.Match[str] | None:
    """The last of an iterator of matches, without keeping the others."""
    tail = deque(matches, maxlen=1)
    return tail[0] if tail else None


def _last_cue(text: str) -> re.Match[str] | None:
    """The last `_CUE` match. Every cue holds "answer" or "####": the regex runs only in a small window around each
    of those, from the last back (scanning the whole text with it would cost 10x the rest of `extract`)."""
    lower = text.lower()
    pos = len(text)
    while (at := max(lower.rfind("answer", 0, pos), lower.rfind("####", 0, pos))) >= 0:
        m = _last(_CUE.finditer(text, max(0, at - _CUE_REACH), at + 2 * _CUE_REACH))
        if m is not None:
            return m
        pos = at
    return None


def _final_answer(text: str) -> tuple[str, int]:
    """The answer stated by the last cue ("final answer is", "Answer:", "####"…) and where its sentence starts (-1:
    none)."""
    m = _last_cue(text)
    if m is None:
        return "", -1
    return _stated(_HOPE.sub("", text[m.end() :]).strip()), m.start()


def _stated(tail: str) -> str:
    """The answer at the start of `tail`, the text after a cue: a math span, a short line, or the value the line
    opens with. Commentary after a stated value is not read ("13, which is 2 more than 11" → 13)."""
    spans = _MATH_SPAN.match(tail)
    if spans:
        return next(g for g in spans.groups() if g is not None).strip()
    line = tail.split("\n", 1)[0].strip().strip('"\\*_').rstrip(".").strip()  # **Final answer: 20**
    line = _HEDGE_WORD.sub("", line)  # "indeed 18"
    if len(line.split()) <= 3 or not _PROSE.search(_MATH_SPAN.sub(" ", line)):
        return line
    lead = leading_value(line)
    if lead is not None:
        return lead
    last = _fallback(line, "last_math")  # "The largest $n$ is 34" → 34
    at = line.rfind(last)
    # "N + 2 when you add it" states an expression, not 2
    return line if last and re.search(r"[-+*/^]\s*$", line[:at]) else last


def _fallback(text: str, how: str) -> str:
    """The last math span or number of `text` ("last_math"), its last math span, or its last number."""
    number = _last(_NUMBER.finditer(text)) if how != "math_span" else None
    if how in ("last_math", "math_span"):
        span = _last(_MATH_SPAN.finditer(text))
        if span is not None and (number is None or number.start() < span.end()):
            return next(g for g in span.groups() if g is not None).strip()
    return number.group(0) if number is not None else ""


def extract(text: str, *, think: bool = True, fallback: str = "last_math") -> Extraction:
    """Find the final answer(s) of a response. See the module docstring for the order of rules."""
    region, problem = answer_region(text, think)
    if problem:
        return Extraction(problem=problem)
    close = region.rfind("</answer>")
    open_ = region.rfind("<answer>", 0, close) if close >= 0 else -1
    if open_ >= 0:
        region = region[open_ + len("<answer>") : close]
        boxes, gaps = find_boxes(region)
        if boxes:
            return _checked(boxes, gaps, "answer_tag")
        return _checked([region.strip().strip("$").strip()], [], "answer_tag")
    boxes, gaps = find_boxes(region)
    final, final_at = _final_answer(region[-SEARCH_CHARS:])
    final_at += max(0, len(region) - SEARCH_CHARS)
    mathy = bool(re.search(r"[\d\\^=]", final))  # "the final answer is clearly highlighted" states nothing
    if boxes and (not mathy or final_at < region.rfind("\\boxed")):
        return _checked(boxes, gaps, "boxed")
    if final:  # a "final answer is" sentence after the last box overrides it
        return _checked([final], [], "final_answer")
    if "\\boxed" in region or "\\fbox" in region:
        return Extraction(problem="no_answer")  # an unbalanced box is no answer, not a cue to guess
    short = region.strip()
    if len(short) <= _SHORT_ANSWER and not _WORD.search(short) and short:
        return _checked([short.strip("$").strip().rstrip(".")], [], "whole")
    if fallback == "conclusion":
        found = conclusion(region[-SEARCH_CHARS:])
        return _checked([found], [], fallback) if found else Extraction(problem="no_answer")
    if fallback != "none":
        found = _fallback(region[-SEARCH_CHARS:], fallback)
        if found:
            return _checked([found], [], fallback)
    return Extraction(problem="no_answer")


def _checked(answers: list[str], gaps: list[str], how: str) -> Extraction:
    if not answers[-1]:
        return Extraction(answers=answers, gaps=gaps, how=how, problem="empty_box")
    if len(answers[-1]) > MAX_ANSWER_CHARS:
        return Extraction(answers=answers, gaps=gaps, how=how, problem="answer_too_long")
    return Extraction(answers=answers, gaps=gaps, how=how)
