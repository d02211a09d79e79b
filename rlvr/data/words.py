r"""Problem text as a token list: what n-gram decontamination and MinHash dedup compare.

Two copies of one problem often differ in LaTeX layout rather than in content: `\dfrac{1}{2}` vs `\frac12`,
`\left(` vs `(`, `$x$` vs `x`, `\text{ if }` vs `if`, `\leq` vs `\le`. So the tokens are what survives layout:

- lowercased; a run of letters (any script) or a run of digits is a token, so `3.14` is `3 14`;
- the operators `+ - = < > ^ _ / | ! ( )` are tokens too. Without them `x_1x_2x_3x_4` and `x-2x+3x-4x` both read
  `x 1 x 2 x 3 x 4`, and on MATH/AIME that kind of collision was a main source of false 8-gram matches;
- a LaTeX command is a token named without its backslash (`\sin x` is `sin x`, so it differs from `\cos x`),
  spelling variants are merged (`\leq` = `\le`, `\cdots` = `\dots`), and layout commands are dropped
  (`\frac`, `\left`, `\text`, `\mathrm`, `\overline`, ...: see LAYOUT), keeping their arguments;
- `\begin{...}` / `\end{...}`, braces, brackets, `$`, backslash-symbols (`\,`, `\\`) and punctuation (`, . ; : ?`) are not tokens;
- Asymptote figures (`[asy] ... [/asy]`) are dropped whole: figure code is not the problem's words, and its
  preambles (`import olympiad; size(150); defaultpen(linewidth(0.8));`) are shared by unrelated problems.
"""

from __future__ import annotations

import re

# Commands that choose how something looks, not what it is.
LAYOUT: frozenset[str] = frozenset().union(
    ("left", "right", "middle", "big", "Big", "bigl", "bigr", "Bigl", "Bigr"),  # delimiter sizes
    ("frac", "dfrac", "tfrac", "cfrac", "displaystyle", "textstyle", "limits", "nolimits"),  # math styles
    ("text", "textbf", "textit", "texttt", "textrm", "mbox", "hbox", "operatorname"),  # text in math
    ("mathrm", "mathbf", "mathit", "mathsf", "mathtt", "mathcal", "mathscr", "boldsymbol", "bm"),  # fonts
    ("overline", "underline", "quad", "qquad", "hspace", "vspace", "hline", "noindent"),  # decoration, space
)
# Spellings of one command, merged.
SAME = {"leq": "le", "geq": "ge", "neq": "ne", "leqslant": "le", "geqslant": "ge", "lt": "<", "gt": ">"}
SAME.update(dict.fromkeys(("ldots", "cdots", "dotsb", "dotsc", "dotsm"), "dots"))
SAME.update(dict.fromkeys(("lvert", "rvert", "vert", "mid"), "|"))
SAME.update(dict.fromkeys(("dbinom", "tbinom"), "binom"))

_ASY = re.compile(r"\[asy\].*?(\[/asy\]|$)", re.DOTALL | re.IGNORECASE)
_ENVIRONMENT = re.compile(r"\\(?:begin|end)\{[^}]*\}")  # \begin{align*}: layout, and its name is no word
_TOKEN = re.compile(r"\\[A-Za-z]+|[^\W\d_]+|\d+|[-+=<>^_/|!()]")


def words(text: str) -> list[str]:
    """The tokens of `text`, as described in the module docstring."""
    out = []
    for tok in _TOKEN.findall(_ENVIRONMENT.sub(" ", _ASY.sub(" ", text))):
        if tok[0] == "\\":
            name = tok[1:]
            if name in LAYOUT:
                continue
            tok = SAME.get(name, name)
        out.append(tok.lower())
    return out
