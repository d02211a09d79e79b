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
from itertools import pairwise, product

from rlvr.rewards.evaluate import Deadline, Inconclusive, Value, approx, evaluate
from rlvr.rewards.parse import Node

MAX_ITEMS = 64  # longer lists are compared as strings only
MAX_ALTERNATIVES = 16  # a ± expands into at most this many values
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


# -- tree helpers ----------------------------------------------------------------------------------------------------
def symbols(node: Node) -> set[str]:
    """Free symbols of a tree (the imaginary unit `i` is not one)."""
    found: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if not isinstance(n, tuple) or not n:
            continue
        if n[0] == "sym":
            if n[1] != "i" and n[1]:
                found.add(n[1])
            continue
        for part in n[1:]:
            if isinstance(part, tuple):
                stack.append(part)
            elif isinstance(part, list):
                for x in part:
                    if isinstance(x, tuple):
                        stack.append(x)
                    elif isinstance(x, list):
                        stack.extend(y for y in x if isinstance(y, tuple))
    return found


def has_decimal(node: Node) -> bool:
    if node[0] == "num":
        return bool(node[2])
    return any(
        (isinstance(p, tuple) and p and has_decimal(p))
        or (isinstance(p, list) and any(isinstance(x, tuple) and has_decimal(x) for x in p))
        for p in node[1:]
    )


def structure(node: Node) -> str:
    return repr(node)


def is_label(node: Node) -> bool:
    """Does `node` name the answer (x, f(x), |AB|, A:B, (p, q), a_{37}) rather than state a value?"""
    kind = node[0]
    if kind == "sym":
        return True
    if kind == "mul":
        return all(x[0] in ("sym", "func") or (x[0] == "tuple" and is_label(x)) for x in node[1]) and any(
            x[0] == "sym" for x in node[1]
        )
    if kind == "func":  # |AB|, \tan A, f(x)
        return all(is_label(x) for x in node[2])
    if kind == "div":
        return is_label(node[1]) and is_label(node[2])
    if kind in ("tuple", "list"):
        return all(is_label(x) for x in node[1])
    return False


def resolve(node: Node) -> Node:
    """What an answer states: `x = 3` → 3, `x ∈ [0, 1)` → [0, 1), `1 ± √2` → [1 + √2, 1 − √2], lists flattened."""
    if node[0] == "rel":
        ops, items = node[1], node[2]
        if not all(op in ("=", "~", "in") for op in ops):
            return node
        if is_label(items[0]) or len(items) >= 3:
            # x = 5 + 6 = 11 → 11;  x = 1/3 ≈ 0.33 → 1/3;  x ≈ 11 → 11
            idx = max((j + 1 for j, op in enumerate(ops) if op in ("=", "in")), default=len(items) - 1)
            return resolve(items[idx])
        if "~" in ops:  # √3/3 ≈ 0.577 → √3/3
            return resolve(items[ops.index("~")])
        if not any(symbols(x) for x in items):  # 2 + 3 = 5 → 5
            return resolve(items[-1])
        return node
    if node[0] == "list":
        out: list[Node] = []
        for item in node[1]:
            r = resolve(item)
            if r[0] == "list" and item[0] != "list":  # a ± expanded: its values join the list
                out.extend(r[1])
            else:
                out.append(r)
        return out[0] if len(out) == 1 else ("list", out)
    if node[0] in ("add", "mul", "neg"):
        folded = fold_matrices(node)
        if folded is not None:
            return folded
    alternatives = expand_pm(node)
    if len(alternatives) > 1:
        return ("list", alternatives)
    return node


def expand_pm(node: Node) -> list[Node]:
    """All sign choices of the ± in a tree (one tree when there is none)."""
    if not isinstance(node, tuple) or node[0] in ("num", "sym", "const", "text", "base"):
        return [node]
    if node[0] == "pm":
        left, right = expand_pm(node[1]), expand_pm(node[2])
        out: list[Node] = []
        for x, y in product(left, right):
            out += [("add", [x, y]), ("add", [x, ("neg", y)])]
        return _dedupe(out[:MAX_ALTERNATIVES])
    if node[0] in ("list", "set", "tuple", "matrix", "rel", "union"):
        return [node]  # collections are expanded item by item by resolve
    options: list[list[object]] = []
    for part in node[1:]:
        if isinstance(part, tuple):
            options.append(list(expand_pm(part)))
        elif isinstance(part, list) and all(isinstance(x, tuple) for x in part):
            choices = [expand_pm(x) for x in part]
            combos = [list(c) for c in product(*choices)][:MAX_ALTERNATIVES]
            options.append(combos)  # type: ignore[arg-type]
        else:
            options.append([part])
    if all(len(o) == 1 for o in options):
        return [node]
    return _dedupe([(node[0], *combo) for combo in list(product(*options))[:MAX_ALTERNATIVES]])


def _dedupe(nodes: list[Node]) -> list[Node]:
    seen: dict[str, Node] = {}
    for n in nodes:
        seen.setdefault(repr(n), n)
    return list(seen.values())


def fold_matrices(node: Node) -> Node | None:
    """Matrix sums and products as one matrix of scalar trees (`A + B`, `2A`, `AB`); None when not matrix algebra."""
    kind = node[0]
    if kind == "matrix":
        return node
    if kind == "neg":
        inner = fold_matrices(node[1])
        return None if inner is None else ("matrix", [[("neg", c) for c in row] for row in inner[1]])
    if kind not in ("add", "mul"):
        return None
    parts = [fold_matrices(p) if p[0] in ("matrix", "add", "mul", "neg") else None for p in node[1]]
    if all(p is None for p in parts):
        return None
    acc: Node = parts[0] if parts[0] is not None else node[1][0]
    for raw, part in zip(node[1][1:], parts[1:], strict=True):
        right = part if part is not None else raw
        acc_m, right_m = acc[0] == "matrix", right[0] == "matrix"
        if kind == "add":
            if not (acc_m and right_m) or _shape(acc) != _shape(right):
                return None
            acc = (
                "matrix",
                [
                    [("add", [x, y]) for x, y in zip(r1, r2, strict=True)]
                    for r1, r2 in zip(acc[1], right[1], strict=True)
                ],
            )
        elif acc_m and right_m:
            (_, k), (k2, m) = _shape(acc), _shape(right)
            if k != k2:
                return None
            rows = acc[1]
            cols = [[r[j] for r in right[1]] for j in range(m)]
            acc = (
                "matrix",
                [
                    [("add", [("mul", [a, b]) for a, b in zip(row, col, strict=True)]) for col in cols]
                    for row in rows
                ],
            )
        else:
            matrix, scalar = (acc, right) if acc_m else (right, acc)
            acc = ("matrix", [[("mul", [scalar, c]) for c in row] for row in matrix[1]])
    return acc


def _shape(matrix: Node) -> tuple[int, int]:
    rows = matrix[1]
    return len(rows), len(rows[0]) if rows else 0
