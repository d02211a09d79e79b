"""Mathematical equivalence of two parsed answers.

Scalars are compared by value: exactly when both sides are rational, with a relative tolerance when either side is
written with decimals (`rel_tol`, 1e-4 as in the Qwen2.5-Math harness), and to 1e-9 for exact irrational forms.
Expressions with free symbols are compared at three fixed random rational points (a randomised identity test:
exact for rational functions, and the chance that two different expressions agree at all three is negligible).
Structure is compared where it carries meaning: a bare answer list and a set are unordered, a bracketed tuple is
ordered, an interval's brackets matter, a relation equals another when one is a positive multiple of the other, and
a one-variable inequality equals an interval union when they agree at every endpoint, beside it and between.
`x = 3` stands for 3 when `x` is a label (a symbol, `f(x)`, `|AB|`, `A:B`, `(p,q)`), never when it is `7 = 11a+c`.
"""

from __future__ import annotations

from fractions import Fraction
from itertools import pairwise

from rlvr.rewards.evaluate import Deadline, Inconclusive, Value, approx, evaluate
from rlvr.rewards.forms import has_decimal, resolve, structure, symbols
from rlvr.rewards.parse import Node

MAX_ITEMS = 64  # longer lists are compared as strings only
_POINTS = (
    (Fraction(7, 3), Fraction(11, 5), Fraction(13, 7), Fraction(17, 11), Fraction(19, 13), Fraction(23, 17)),
    (Fraction(-5, 4), Fraction(9, 7), Fraction(31, 10), Fraction(-12, 13), Fraction(29, 6), Fraction(3, 19)),
    (Fraction(41, 9), Fraction(-7, 11), Fraction(2, 15), Fraction(37, 8), Fraction(-17, 5), Fraction(43, 21)),
)
_ORDERED_OPS = {"<": ">", "<=": ">="}


class Comparer:
    """Holds the tolerance and the deadline for one comparison."""

    def __init__(self, deadline: Deadline, rel_tol: float = 1e-4):
        self.deadline = deadline
        self.rel_tol = rel_tol

    # -- entry -------------------------------------------------------------------------------------------------------
    def equal(self, pred: Node, gold: Node) -> bool:
        a, b = resolve(pred), resolve(gold)
        if self._equal(a, b):
            return True
        if (a is not pred or b is not gold) and pred[0] == "rel" and gold[0] == "rel":
            return self._relations(pred, gold)
        return False

    def _equal(self, a: Node, b: Node) -> bool:
        self.deadline.check()
        ka, kb = a[0], b[0]
        if ka == "text" or kb == "text":
            return ka == kb and a[1] == b[1]
        if ka in ("list", "set") or kb in ("list", "set"):
            return self._collections(a, b)
        if ka == "tuple" and kb == "tuple":
            return self._tuples(a, b)
        if ka == "matrix" or kb == "matrix":
            return self._matrices(a, b)
        if ka == "union" or kb == "union":
            return self._unions(a, b)
        if ka == "rel" or kb == "rel":
            if ka == "rel" and kb == "rel":
                return self._relations(a, b)
            rel, other = (a, b) if ka == "rel" else (b, a)
            if other[0] in ("tuple", "union"):
                return self._relation_vs_set(rel, other)
            return False
        if ka == "tuple" or kb == "tuple":
            return False
        if ka == "base" or kb == "base":
            return self._bases(a, b)
        return self.scalars(a, b)

    # -- structures --------------------------------------------------------------------------------------------------
    def _items(self, node: Node) -> list[Node]:
        if node[0] in ("list", "set", "tuple"):
            return [resolve(x) for x in node[1]]
        return [node]

    def _collections(self, a: Node, b: Node) -> bool:
        xs, ys = self._items(a), self._items(b)
        if len(xs) > MAX_ITEMS or len(ys) > MAX_ITEMS:
            return False
        ordered = a[0] == "tuple" or b[0] == "tuple"
        if any(x[0] == "tuple" and len(x[1]) == 2 and (x[2], x[3]) != ("(", ")") for x in (a, b)):
            return False  # [0, 1) is an interval, never the answer list 0, 1
        if ordered:
            return len(xs) == len(ys) and all(self._equal(x, y) for x, y in zip(xs, ys, strict=True))
        # set semantics: every item has an equal on the other side, both ways (duplicates do not count)
        return all(any(self._equal(x, y) for y in ys) for x in xs) and all(
            any(self._equal(x, y) for x in xs) for y in ys
        )

    def _tuples(self, a: Node, b: Node) -> bool:
        if len(a[1]) != len(b[1]):
            return False
        if len(a[1]) == 2 and (a[2], a[3]) != (b[2], b[3]):
            return False  # an interval's ends; (1, 2) the point is the open interval (1, 2)
        return all(self._equal(resolve(x), resolve(y)) for x, y in zip(a[1], b[1], strict=True))

    def _matrices(self, a: Node, b: Node) -> bool:
        def cells(n: Node) -> tuple[list[Node], tuple[int, int] | None]:
            if n[0] == "matrix":
                rows = n[1]
                shape = (len(rows), len(rows[0])) if all(len(r) == len(rows[0]) for r in rows) else None
                return [c for r in rows for c in r], shape
            if n[0] == "tuple":
                return list(n[1]), None
            return [n], (1, 1)

        (xs, sa), (ys, sb) = cells(a), cells(b)
        if a[0] == b[0] == "matrix" and sa != sb:
            return False
        if len(xs) != len(ys):
            return False
        return all(self._equal(resolve(x), resolve(y)) for x, y in zip(xs, ys, strict=True))

    def _unions(self, a: Node, b: Node) -> bool:
        xs = a[1] if a[0] == "union" else [a]
        ys = b[1] if b[0] == "union" else [b]
        if len(xs) != len(ys):
            if a[0] == "rel" or b[0] == "rel":
                return self._relation_vs_set(a if a[0] == "rel" else b, b if a[0] == "rel" else a)
            return False
        return all(any(self._equal(x, y) for y in ys) for x in xs) and all(
            any(self._equal(x, y) for x in xs) for y in ys
        )

    def _bases(self, pred: Node, gold: Node) -> bool:
        if pred[0] == gold[0] == "base":
            return pred[1] == gold[1] and pred[2] == gold[2]
        if gold[0] == "base":  # gold 204_5, pred 204: the base left implicit
            return pred[0] == "num" and not pred[2] and str(pred[1]) == gold[1].lstrip("0")
        return self.scalars(pred, gold)  # pred 204_5 against a decimal gold: by value

    # -- scalars -----------------------------------------------------------------------------------------------------
    def scalars(self, a: Node, b: Node) -> bool:
        """Equal values (or equal functions of the same free symbols)."""
        pa, pb = a[0] == "pct", b[0] == "pct"
        a0, b0 = (a[1] if pa else a), (b[1] if pb else b)
        if self._values_equal(a0, b0):
            return True
        if pb and not pa:  # gold 28%, pred 0.28
            return self._values_equal(a0, ("div", b0, ("num", Fraction(100), False)))
        if pa and not pb:
            return self._values_equal(("div", a0, ("num", Fraction(100), False)), b0)
        return False

    def _values_equal(self, a: Node, b: Node) -> bool:
        names = sorted(symbols(a) | symbols(b))
        loose = has_decimal(a) or has_decimal(b)
        if len(names) > len(_POINTS[0]):
            return False
        try:
            if not names:
                return self.close(evaluate(a, {}, self.deadline), evaluate(b, {}, self.deadline), loose)
            for point in _POINTS:
                env: dict[str, Value] = dict(zip(names, point, strict=False))
                if not self.close(evaluate(a, env, self.deadline), evaluate(b, env, self.deadline), loose):
                    return False
            return True
        except Inconclusive:
            return structure(a) == structure(b)

    def close(self, x: Value, y: Value, loose: bool) -> bool:
        if isinstance(x, Fraction) and isinstance(y, Fraction):
            if x == y:
                return True
            if not loose:
                return False
        zx, zy = approx(x), approx(y)
        if zx == zy:
            return True
        if any(abs(v) == float("inf") for v in (zx.real, zx.imag, zy.real, zy.imag)):
            return False
        tol = self.rel_tol if loose else 1e-9
        return abs(zx - zy) <= tol * max(abs(zx), abs(zy), 1e-12 if not loose else 0.0) + (
            1e-12 if loose else 0
        )

    # -- relations ---------------------------------------------------------------------------------------------------
    def _relations(self, a: Node, b: Node) -> bool:
        pa, pb = _pairs(a), _pairs(b)
        if pa is None or pb is None or len(pa) != len(pb):
            return False
        return all(any(self._same_pair(x, y) for y in pb) for x in pa)

    def _same_pair(self, x: tuple[str, Node], y: tuple[str, Node]) -> bool:
        (op_x, fx), (op_y, fy) = x, y
        if op_x != op_y:
            return False
        names = sorted(symbols(fx) | symbols(fy))
        if len(names) > len(_POINTS[0]):
            return False
        ratio: complex | None = None
        try:
            for point in _POINTS:
                env: dict[str, Value] = dict(zip(names, point, strict=False))
                vx, vy = approx(evaluate(fx, env, self.deadline)), approx(evaluate(fy, env, self.deadline))
                if vx == 0 and vy == 0:
                    continue
                if vx == 0 or vy == 0:
                    return False
                r = vx / vy
                if ratio is None:
                    ratio = r
                elif abs(r - ratio) > 1e-9 * abs(ratio):
                    return False
        except Inconclusive:
            return structure(fx) == structure(fy)
        if ratio is None:
            return True
        return op_x in ("=", "!=") or (abs(ratio.imag) < 1e-12 and ratio.real > 0)

    def _relation_vs_set(self, rel: Node, other: Node) -> bool:
        """A one-variable inequality against an interval union: agree at endpoints, beside them, between, far out."""
        intervals = _intervals(other)
        if intervals is None:
            return False
        ops, items = rel[1], rel[2]
        if any(op not in ("<", "<=", ">", ">=", "in") for op in ops):
            return False
        if "in" in ops:
            return False
        free = [i for i, it in enumerate(items) if symbols(it)]
        if len(free) != 1:
            return False
        names = symbols(items[free[0]])
        if len(names) == 1:
            var = next(iter(names))
        else:
            items = [*items[: free[0]], ("sym", "_t"), *items[free[0] + 1 :]]
            var = "_t"
        try:
            cuts = {p for lo, hi, _, _ in intervals for p in (lo, hi) if isinstance(p, Fraction)}
            for it in items:
                if not symbols(it):
                    v = evaluate(it, {}, self.deadline)
                    if isinstance(v, Fraction):
                        cuts.add(v)
            ordered = sorted(cuts)
            probes = set(ordered)
            eps = Fraction(1, 10**6)
            for p in ordered:
                probes |= {p - eps, p + eps}
            probes |= {(p + q) / 2 for p, q in pairwise(ordered)}
            probes |= {Fraction(-(10**6)), Fraction(10**6), Fraction(0)}
            return all(_holds(rel[1], items, var, p, self.deadline) == _inside(intervals, p) for p in probes)
        except Inconclusive:
            return False


def _holds(ops: list[str], items: list[Node], var: str, p: Fraction, deadline: Deadline) -> bool:
    values = [evaluate(it, {var: p}, deadline) for it in items]
    for op, x, y in zip(ops, values, values[1:], strict=False):
        zx, zy = approx(x), approx(y)
        if abs(zx.imag) > 1e-12 or abs(zy.imag) > 1e-12:
            return False
        a, b = (x, y) if isinstance(x, Fraction) and isinstance(y, Fraction) else (zx.real, zy.real)
        ok = {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
        if not ok:
            return False
    return True


Interval = tuple[Fraction | float, Fraction | float, bool, bool]  # lo, hi, lo closed, hi closed


def _intervals(node: Node) -> list[Interval] | None:
    parts = node[1] if node[0] == "union" else [node]
    out: list[Interval] = []
    for part in parts:
        if part[0] != "tuple" or len(part[1]) != 2:
            return None
        ends: list[Fraction | float] = []
        for end in part[1]:
            try:
                v = evaluate(end, {}, Deadline(0.05))
            except Exception:
                return None
            if isinstance(v, Fraction):
                ends.append(v)
            elif v.imag == 0:
                ends.append(v.real)
            else:
                return None
        out.append((ends[0], ends[1], part[2] == "[", part[3] == "]"))
    return out


def _inside(intervals: list[Interval], p: Fraction) -> bool:
    for lo, hi, lo_closed, hi_closed in intervals:
        if (lo < p or (lo_closed and lo == p)) and (p < hi or (hi_closed and p == hi)):
            return True
    return False


def _pairs(rel: Node) -> list[tuple[str, Node]] | None:
    """A relation as (op, f) pairs meaning `f op 0`, with < and <= turned around into > and >=."""
    if rel[0] != "rel":
        return None
    out: list[tuple[str, Node]] = []
    for op, left, right in zip(rel[1], rel[2], rel[2][1:], strict=False):
        if op == "in":
            return None
        if op in _ORDERED_OPS:
            op, left, right = _ORDERED_OPS[op], right, left
        out.append(("=" if op == "~" else op, ("add", [left, ("neg", right)])))
    return out
