"""Turn an extracted answer string into a clean token list.

Normalisation removes what never changes the value of an answer: math delimiters, spacing commands, `\\left`/`\\right`,
font and text wrappers, degree signs, currency, thousands separators (`1,000`, `10,\\!000`, `1\\,000`, `1 000`), and
maps unicode math to LaTeX. It does not decide what the answer means: that is the parser's job.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_UNICODE = {
    "−": "-", "–": "-", "×": "\\times ", "·": "\\cdot ", "÷": "\\div ", "≤": "\\le ", "≥": "\\ge ", "≠": "\\ne ",
    "π": "\\pi ", "∞": "\\infty ", "√": "\\sqrt ", "°": "", "∪": "\\cup ", "∩": "\\cap ", "±": "\\pm ", "∈": "\\in ",
    "≈": "\\approx ", "⋅": "\\cdot ", "\u00a0": " ", "’": "'", "…": "\\dots ",
}  # fmt: skip
_UNICODE_RE = re.compile("|".join(map(re.escape, _UNICODE)))

_DROP = re.compile(
    r"\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big|bigg|Bigg|displaystyle|textstyle|limits|nolimits|mathstrut)"
    r"(?![a-zA-Z])|\\!|,\\!\s*(?=\d)|(?<=\d)\\,(?=\d{3}(?!\d))"
    r"|\\hspace\*?\{[^{}]*\}|\\(?:phantom|vphantom)\{[^{}]*\}"
)  # removed outright: `10,\!000` and `1\,000 \text{ cm}` are 10000 and 1000
_SPACES = re.compile(r"(?<!\\)\\[,;:> ]|\\q?quad(?![a-zA-Z])|~")
_OVER_ESCAPED = re.compile(r"(?<!\\)\\\\(?=[a-zA-Z])")  # `\\frac` written for `\frac`
_DEGREES = re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|\\degree|\^\s*\{\s*o\s*\}")
_WRAPPERS = re.compile(
    r"\\(?:text|textbf|textit|textrm|textsf|texttt|textnormal|mathrm|mathbf|mathit|mathsf|mathtt|mathcal|mathbb|"
    r"boldsymbol|bm|mbox|hbox|rm|bf|it|operatorname|emph|underline|overline|widehat|hat|bar|vec|overrightarrow|"
    r"dot|tilde|mathring)\s*\{"
)
_ORDINAL = re.compile(
    r"(?<=\d)\s*(?:\^\s*\{?\s*(?:\\text\s*\{|\\mathrm\s*\{)?\s*(?:st|nd|rd|th)\s*\}?\s*\}?|(?:st|nd|rd|th)(?![a-zA-Z]))"
)
_FRAC_VARIANTS = re.compile(r"\\[dtc]frac(?![a-zA-Z])")
_BINOM_VARIANTS = re.compile(r"\\[dt]binom(?![a-zA-Z])")
_THOUSANDS = re.compile(r"(?<![\d.,(\[])([1-9]\d{0,2})((?:,\d{3})+)(?![\d,]|\.\d*,|\s*[)\]])")
_SPACE_THOUSANDS = re.compile(r"^(-?\d{1,3})((?: \d{3})+)(\.\d+)?$")
_CURRENCY = re.compile(r"\\\$|\\euro|€|£|¥|\\pounds|(?<![a-zA-Z])USD(?![a-zA-Z])")


def _unwrap(s: str, pattern: re.Pattern[str]) -> str:
    """Replace `\\cmd{X}` by ` X ` for every command matched by `pattern` (braces balanced, nesting allowed)."""
    for _ in range(50):  # bounded: each pass removes one wrapper
        m = pattern.search(s)
        if m is None:
            return s
        depth, i = 1, m.end()
        while i < len(s) and depth:
            if s[i] == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(s[i], 0)
            i += 1
        inner = s[m.end() : i - 1] if depth == 0 else s[m.end() :]
        s = s[: m.start()] + " " + inner + " " + s[i:]
    return s


def normalize(s: str) -> str:
    """A cleaned LaTeX answer string (see module docstring)."""
    s = _UNICODE_RE.sub(lambda m: _UNICODE[m.group(0)], s)
    s = _CURRENCY.sub(" ", s)
    s = s.replace("$", " ").replace("\\(", " ").replace("\\)", " ")
    s = s.replace("\\[", " ").replace("\\]", " ")
    s = re.sub(r"(?<=\d)\s*\{\s*,\s*\}\s*(?=\d)|\{,\}", ",", s).replace("\\%", "%")
    s = _OVER_ESCAPED.sub(r"\\", s)
    s = _DROP.sub(lambda m: "," if m.group(0).startswith(",") else "", s)
    s = _SPACES.sub(" ", s)
    s = _DEGREES.sub(" ", s)
    s = _ORDINAL.sub(" ", s)
    s = _FRAC_VARIANTS.sub("\\\\frac", s)
    s = _BINOM_VARIANTS.sub("\\\\binom", s)
    s = _unwrap(s, _WRAPPERS)
    s = s.replace("\\{", " \\lbrace ").replace("\\}", " \\rbrace ")
    s = s.replace("\\lbrace", " \\lbrace ").replace("\\rbrace", " \\rbrace ")
    s = re.sub(r"\s+", " ", s).strip()
    s = re.sub(r"^(?:\\approx|=|\\sim)\s*", "", s)  # "\approx 8.24": the value, not a relation
    s = s.rstrip(".\\").strip()
    s = _THOUSANDS.sub(lambda m: m.group(1) + m.group(2).replace(",", ""), s)
    m = _SPACE_THOUSANDS.match(s)
    if m:
        s = m.group(1) + m.group(2).replace(" ", "") + (m.group(3) or "")
    return s


class Token(NamedTuple):
    kind: str  # "num", "cmd", "word", "op", "text"
    text: str


_TOKEN = re.compile(
    r"(?P<num>\d+\.?\d*|\.\d+)|(?P<cmd>\\[a-zA-Z]+|\\\\|\\.)|(?P<word>[a-zA-Z]+)"
    r"|(?P<op><=|>=|!=|==|=>|->|[-+*/^_=<>!(),;\[\]{}|&:'%?])|(?P<ws>\s+)|(?P<other>.)"
)

MAX_TOKENS = 600  # answers longer than this are compared as strings only


def tokenize(s: str) -> list[Token]:
    """Split a normalised answer into tokens; whitespace is dropped (LaTeX ignores it too)."""
    out: list[Token] = []
    for m in _TOKEN.finditer(s):
        kind = m.lastgroup
        if kind == "ws":
            continue
        if kind == "other":
            kind = "op"
        out.append(Token(kind or "op", m.group(0)))
        if len(out) > MAX_TOKENS:
            break
    return out


def squash(s: str) -> str:
    """A string form for last-resort comparison: normalised, lower-case, no spaces or outer punctuation."""
    s = normalize(s).lower()
    s = re.sub(r"\s+|\\lbrace|\\rbrace|[{}]", "", s)
    return s.rstrip(".,;:")
