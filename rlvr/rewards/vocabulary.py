"""Words in answers: which are functions, separators ("and", "or"), percent signs, infinity, and which are units or
prose to drop (`5 \\text{ cm}^2` states 5). Decides too when a whole answer is prose ("Evelyn", "east").
"""

from __future__ import annotations

from rlvr.rewards.latex import Token

FUNCS = {
    "sin", "cos", "tan", "sec", "csc", "cot", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh",
    "log", "ln", "lg", "exp", "det", "gcd", "lcm", "max", "min", "sgn", "arccot", "arcsec", "arccsc",
}  # fmt: skip
SEPARATOR_WORDS = {"and", "or", "und", "et"}
PERCENT_WORDS = {"percent", "pct", "percentage"}
# Two-letter words that are units or prose rather than a product of two symbols.
UNIT_WORDS = {
    "cm", "mm", "km", "kg", "mg", "ft", "yd", "mi", "hr", "ml", "lb", "oz", "sq", "cc", "mph", "am", "pm", "is", "so",
    "of", "to", "at", "by", "if", "on", "as", "be", "we", "it", "mL", "dm", "in", "hrs", "min", "sec", "deg", "rad",
}  # fmt: skip


class ParseError(ValueError):
    pass


def resolve_words(tokens: list[Token]) -> list[Token]:
    """Resolve words: separators, percent, function names, infinity; drop units and prose after numbers."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        if kind == "word" and i >= 2 and tokens[i - 2].text in ("\\begin", "\\end"):
            out.append(tokens[i])  # an environment name
        elif kind == "word":
            low = text.lower()
            if low in SEPARATOR_WORDS:
                out.append(Token("op", ","))
            elif low in PERCENT_WORDS:
                out.append(Token("op", "%"))
            elif low in ("infinity", "infty", "oo", "inf"):
                out.append(Token("cmd", "\\infty"))
            elif (low in FUNCS and _applied(tokens, i)) or low in ("sqrt", "pi"):
                out.append(Token("cmd", "\\" + low))
            elif len(text) == 1:
                out.append(Token("sym", text))
            elif len(text) == 2 and text not in UNIT_WORDS:
                out.extend([Token("sym", text[0]), Token("sym", text[1])])
            elif i + 1 < len(tokens) and tokens[i + 1].text == "{":
                raise ParseError(f"broken command {text}{{")  # `\text` mangled into a tab + "ext{"
            else:  # a unit or a prose word: drop it, and a power written on it (cm^2)
                if i + 2 < len(tokens) and tokens[i + 1].text == "^":
                    i += 3 if tokens[i + 2].text != "{" else skip_group(tokens, i + 2) - i
                    continue
        else:
            out.append(tokens[i])
        i += 1
    out = [t for k, t in enumerate(out) if not (t.text == "," and k and out[k - 1].text == ",")]  # ", and"
    while out and out[-1].text in (",", ";", "."):
        out.pop()
    while out and out[0].text in (",", ";"):
        out.pop(0)
    return out


def skip_group(tokens: list[Token], i: int) -> int:
    depth = 0
    while i < len(tokens):
        depth += {"{": 1, "}": -1}.get(tokens[i].text, 0)
        i += 1
        if depth == 0:
            break
    return i


def is_text(tokens: list[Token]) -> bool:
    """True when an answer is prose (a name, a word) rather than mathematics."""
    words = [t for t in tokens if t.kind == "word"]
    if not words or any(t.kind == "num" for t in tokens):
        return False
    if any(t.kind == "cmd" and t.text not in ("\\lbrace", "\\rbrace") for t in tokens):
        return False
    return any(len(t.text) > 2 and t.text.lower() not in SEPARATOR_WORDS for t in words)


def _applied(tokens: list[Token], i: int) -> bool:
    """A function word applied to something (`sin x`, `min(a, b)`), not a unit at the end (`40 min`, `5 sec`)."""
    nxt = tokens[i + 1] if i + 1 < len(tokens) else None
    return nxt is not None and (nxt.kind in ("num", "word", "cmd") or nxt.text in ("(", "^", "_", "{", "|"))
