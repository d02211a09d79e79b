"""A small recursive-descent parser from normalised LaTeX answers to expression trees.

Trees are plain tuples, first item the node kind:

    ("num", Fraction, decimal: bool)      ("sym", name)          ("const", "pi" | "inf" | "i")
    ("add", [terms])  ("mul", [factors])  ("div", a, b)  ("pow", a, b)  ("neg", a)  ("pm", a, b)  ("pct", a)
    ("func", name, [args])                ("base", digits, base)  ("text", squashed string)
    ("tuple", [items], open, close)       ("set", [items])       ("list", [items])   ("matrix", [[cells]])
    ("union", [parts])                    ("rel", [ops], [items])

`list` is a bare answer list (`1, 2`, `6 and 8`); `tuple` is bracketed and may be a point or an interval — the
comparison decides. The parser knows LaTeX syntax, not mathematics; it raises ParseError on anything it cannot read
and never runs longer than the token count allows (each step consumes a token, depth is bounded).
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from rlvr.rewards.latex import Token, tokenize
from rlvr.rewards.vocabulary import FUNCS, ParseError, is_text, resolve_words, skip_group

Node = tuple[Any, ...]
MAX_DEPTH = 60

BIG_OPS = {"sum", "prod", "int", "lim", "oint", "iint"}
RELATIONS = {
    "=": "=", "==": "=", "<": "<", ">": ">", "<=": "<=", ">=": ">=", "!=": "!=",
    "\\le": "<=", "\\leq": "<=", "\\leqslant": "<=", "\\ge": ">=", "\\geq": ">=", "\\geqslant": ">=",
    "\\lt": "<", "\\gt": ">", "\\ne": "!=", "\\neq": "!=", "\\approx": "~", "\\sim": "~", "\\simeq": "~",
    "\\equiv": "=", "\\in": "in", "\\to": "=", "\\rightarrow": "=", "\\Rightarrow": "=", "\\implies": "=",
    "->": "=", "=>": "=", "\\iff": "=", "\\Leftrightarrow": "=",
}  # fmt: skip
MUL_OPS = {"*", "\\cdot", "\\times", "\\ast", "/", "\\div", ":"}
MATRIX_ENVS = {"pmatrix", "bmatrix", "vmatrix", "Bmatrix", "Vmatrix", "matrix", "smallmatrix", "array"}
ATOM_CMDS = {"\\frac", "\\sqrt", "\\binom", "\\pi", "\\infty", "\\lbrace", "\\langle", "\\begin", "\\emptyset",
             "\\varnothing", "\\inf"}  # fmt: skip


class Parser:
    def __init__(self, tokens: list[Token]):
        self.toks = resolve_words(tokens)
        self.i = 0
        self.depth = 0
        self.abs_depth = 0

    # -- token helpers -------------------------------------------------------------------------------------------
    def peek(self, k: int = 0) -> Token | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def at(self, *texts: str) -> bool:
        t = self.peek()
        return t is not None and t.text in texts

    def take(self) -> Token:
        t = self.peek()
        if t is None:
            raise ParseError("unexpected end")
        self.i += 1
        return t

    def expect(self, text: str) -> None:
        t = self.take()
        if t.text != text:
            raise ParseError(f"expected {text!r}, got {t.text!r}")

    def enter(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ParseError("nesting too deep")

    # -- grammar ---------------------------------------------------------------------------------------------------
    def parse(self) -> Node:
        if not self.toks:
            raise ParseError("empty")
        node = self.sequence(stop=())
        if self.peek() is not None:
            raise ParseError(f"unexpected {self.peek()!r}")
        return node

    def sequence(self, stop: tuple[str, ...]) -> Node:
        """Items separated by `,` / `;` / and / or, up to a closing token in `stop`."""
        groups: list[Node] = []
        while True:
            items = [self.relation()]
            while self.at(","):
                self.take()
                if self.peek() is None or self.at(*stop):
                    break
                items.append(self.relation())
            groups.append(items[0] if len(items) == 1 else ("list", items))
            if not self.at(";"):
                break
            self.take()
            if self.peek() is None or self.at(*stop):
                break
        return groups[0] if len(groups) == 1 else ("list", groups)

    def relation(self) -> Node:
        items = [self.union()]
        ops: list[str] = []
        while (t := self.peek()) is not None and t.text in RELATIONS:
            self.take()
            ops.append(RELATIONS[t.text])
            items.append(self.union())
        return items[0] if not ops else ("rel", ops, items)

    def union(self) -> Node:
        parts = [self.additive()]
        while self.at("\\cup", "\\cap", "U"):
            op = self.take().text
            if op == "\\cap":
                raise ParseError("intersection")
            parts.append(self.additive())
        return parts[0] if len(parts) == 1 else ("union", parts)

    def additive(self) -> Node:
        terms = [self.term()]
        while self.at("+", "-", "\\pm", "\\mp"):
            op = self.take().text
            right = self.term()
            if op in ("\\pm", "\\mp"):
                left = terms[0] if len(terms) == 1 else ("add", terms)
                terms = [("pm", left, right)]
            else:
                terms.append(right if op == "+" else ("neg", right))
        return terms[0] if len(terms) == 1 else ("add", terms)

    def term(self) -> Node:
        node = self.unary()
        while True:
            t = self.peek()
            if t is None:
                return node
            if t.text in MUL_OPS:
                self.take()
                right = self.unary()
                node = ("div", node, right) if t.text in ("/", "\\div", ":") else _mul(node, right)
            elif self._starts_atom(t):
                if node[0] == "num" and not node[2] and t.text == "\\frac":
                    right = self.unary()
                    if right[0] == "div" and right[1][0] == "num" and right[2][0] == "num":
                        node = ("add", [node, right])  # mixed number: 2\frac{1}{2}
                        continue
                    node = _mul(node, right)
                else:
                    node = _mul(node, self.power())
            else:
                return node

    def _starts_atom(self, t: Token) -> bool:
        if t.kind in ("num", "sym"):
            return True
        if t.kind == "cmd":
            return (
                t.text in ATOM_CMDS or t.text[1:] in FUNCS or t.text[1:] in BIG_OPS or _is_symbol_cmd(t.text)
            )
        return t.text in ("(", "[") or (t.text == "{")

    def unary(self) -> Node:
        if self.at("-"):
            self.take()
            return ("neg", self.unary())
        if self.at("+"):
            self.take()
            return self.unary()
        if self.at("\\pm", "\\mp"):
            self.take()
            return ("pm", ("num", Fraction(0), False), self.unary())
        return self.power()

    def power(self) -> Node:
        base = self.postfix()
        if self.at("^"):
            self.take()
            self.enter()
            exp = self.unary() if self.at("-") else self.arg()
            self.depth -= 1
            base = ("pow", base, exp)
            while self.at("!", "%", "'"):
                base = self._post(base)
        return base

    def postfix(self) -> Node:
        node = self.atom()
        while self.at("!", "%", "'"):
            node = self._post(node)
        return node

    def _post(self, node: Node) -> Node:
        op = self.take().text
        if op == "!":
            return ("func", "factorial", [node])
        if op == "%":
            return ("pct", node)
        return ("sym", _name(node) + "'")

    def arg(self) -> Node:
        """A command argument: a braced group, or a single digit / letter / atom (`\\frac12`, `x^2`)."""
        t = self.peek()
        if t is None:
            raise ParseError("missing argument")
        if t.text == "{":
            self.take()
            self.enter()
            node = self.sequence(stop=("}",))
            self.depth -= 1
            self.expect("}")
            return node
        if t.kind == "num" and len(t.text) > 1 and "." not in t.text:
            self.toks[self.i] = Token("num", t.text[1:])
            return ("num", Fraction(int(t.text[0])), False)
        return self.atom()

    def atom(self) -> Node:
        t = self.take()
        self.enter()
        try:
            return self._atom(t)
        finally:
            self.depth -= 1

    def _atom(self, t: Token) -> Node:
        if t.kind == "num":
            node: Node = ("num", Fraction(t.text if t.text[-1] != "." else t.text[:-1]), "." in t.text)
            if self.at("_"):
                self.take()
                return ("base", t.text, self._raw_arg().strip("{}"))
            return node
        if t.kind == "sym":
            return self._subscripted(t.text)
        if t.text in ("(", "["):
            if self.at(")"):  # `n(\text{Neither})` once the word is gone
                self.take()
                return ("sym", "()")
            items = self.sequence(stop=(")", "]"))
            close = self.take().text
            if close not in (")", "]"):
                raise ParseError("unclosed bracket")
            if items[0] == "list":
                return ("tuple", items[1], t.text, close)
            return items
        if t.text == "{":
            inner = self.sequence(stop=("}",))
            self.expect("}")
            return inner
        if t.text == "|":
            self.abs_depth += 1
            inner = self.additive()
            self.expect("|")
            self.abs_depth -= 1
            return ("func", "abs", [inner])
        if t.kind == "cmd":
            return self._command(t.text)
        raise ParseError(f"unexpected {t.text!r}")

    def _subscripted(self, name: str) -> Node:
        if self.at("_"):
            self.take()
            name = name + "_" + self._raw_arg()
        return ("sym", name)

    def _raw_arg(self) -> str:
        """An argument as text, unparsed: subscripts are names (`S_{MBCN}`, `F_{n-k-1}`), not expressions."""
        t = self.take()
        if t.text != "{":
            if t.kind == "num" and len(t.text) > 1:
                self.toks.insert(self.i, Token("num", t.text[1:]))
                return t.text[0]
            return t.text
        end = skip_group(self.toks, self.i - 1)
        inner = "".join(x.text for x in self.toks[self.i : end - 1])
        self.i = end
        return "{" + inner + "}" if len(inner) > 1 else inner

    def _command(self, cmd: str) -> Node:
        name = cmd[1:]
        if cmd == "\\frac":
            return ("div", self.arg(), self.arg())
        if cmd == "\\binom":
            return ("func", "binom", [self.arg(), self.arg()])
        if cmd == "\\sqrt":
            index: Node = ("num", Fraction(2), False)
            if self.at("["):
                self.take()
                index = self.additive()
                self.expect("]")
            return ("pow", self.arg(), ("div", ("num", Fraction(1), False), index))
        if cmd == "\\pi":
            return ("const", "pi")
        if cmd in ("\\infty", "\\inf"):
            return ("const", "inf")
        if cmd in ("\\emptyset", "\\varnothing"):
            return ("set", [])
        if cmd == "\\lbrace":
            if self.at("\\rbrace"):
                self.take()
                return ("set", [])
            items = self.sequence(stop=("\\rbrace",))
            self.expect("\\rbrace")
            return ("set", items[1] if items[0] == "list" else [items])
        if cmd == "\\langle":
            items = self.sequence(stop=("\\rangle",))
            self.expect("\\rangle")
            return ("tuple", items[1] if items[0] == "list" else [items], "(", ")")
        if cmd == "\\begin":
            return self._environment()
        if name in FUNCS:
            return self._function(name)
        if name in BIG_OPS:
            return self._big_op(name)
        if _is_symbol_cmd(cmd):
            return self._subscripted(cmd)
        raise ParseError(f"unknown command {cmd}")

    def _function(self, name: str) -> Node:
        power: Node | None = None
        base: Node | None = None
        if self.at("_"):  # \log_2 x
            self.take()
            base = self.arg()
        if self.at("^"):  # \sin^2 x
            self.take()
            power = self.arg()
        if self.at("("):
            self.take()
            inner = self.sequence(stop=(")",))
            self.expect(")")
            args = inner[1] if inner[0] == "list" else [inner]
        else:
            args = [self.power()]
        if base is not None:
            args = [*args, base]
        node: Node = ("func", name, args)
        return ("pow", node, power) if power is not None else node

    def _big_op(self, name: str) -> Node:
        lo: Node = ("sym", "")
        hi: Node = ("sym", "")
        for _ in range(2):
            if self.at("_"):
                self.take()
                lo = self.arg()
                if lo[0] == "rel":  # \sum_{k=0}: the bound, not the relation
                    lo = lo[2][-1]
            elif self.at("^"):
                self.take()
                hi = self.arg()
        return ("func", name, [lo, hi, self.term()])

    def _environment(self) -> Node:
        self.expect("{")
        env = self.take().text
        self.expect("}")
        if env == "array" and self.at("{"):
            self.i = skip_group(self.toks, self.i)
        rows: list[list[Node]] = [[]]
        while not self.at("\\end"):
            if self.peek() is None:
                raise ParseError("unclosed environment")
            if self.at("\\\\"):
                self.take()
                rows.append([])
                continue
            if self.at("&"):
                self.take()
                continue
            rows[-1].append(self.relation())
        self.take()
        self.expect("{")
        self.take()
        self.expect("}")
        rows = [r for r in rows if r]
        if env not in MATRIX_ENVS:
            cells = [c for r in rows for c in r]
            return cells[0] if len(cells) == 1 else ("list", cells)
        return ("matrix", rows)


def _is_symbol_cmd(cmd: str) -> bool:
    """Greek letters and unknown `\\name` commands stand for symbols."""
    return cmd[1:].isalpha() and cmd not in RELATIONS and cmd not in MUL_OPS and cmd[1:] not in FUNCS and cmd not in (
        "\\cup", "\\cap", "\\pm", "\\mp", "\\end", "\\rbrace", "\\rangle", "\\dots", "\\ldots", "\\cdots",
    )  # fmt: skip


def _mul(a: Node, b: Node) -> Node:
    if a[0] == "mul":
        return ("mul", [*a[1], b])
    return ("mul", [a, b])


def _name(node: Node) -> str:
    """A stable string for a subscript or a primed symbol."""
    kind = node[0]
    if kind == "sym":
        return str(node[1])
    if kind == "num":
        return str(node[1])
    return repr(node)


def parse(text: str) -> Node:
    """Parse a normalised answer string. Raises ParseError."""
    tokens = tokenize(text)
    if is_text(tokens):
        return ("text", "".join(t.text for t in tokens).lower())
    return Parser(tokens).parse()
