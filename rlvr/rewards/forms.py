"""What an answer states, read off its tree: `x = 3` states 3, `1 ± √2` states two values, `A + B` of matrices
states one matrix. Also the small tree queries the comparison needs (free symbols, decimals), and whether an
answer is a number or still arithmetic to be done (`is_unevaluated`, for `verify(final_form=True)`).
"""

from __future__ import annotations

from itertools import product

from rlvr.rewards.parse import Node

MAX_ALTERNATIVES = 16  # a ± expands into at most this many values
_ARITHMETIC = ("add", "mul", "div", "pow", "neg", "pct")  # operations on literals a reader can carry out


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


def is_number(node: Node, mixed: bool = True) -> bool:
    """A number as a final answer is written: 94, -3, 2.5, 10%, a fraction that is not a whole number (3/4,
    `\\frac{-3}{4}`), a mixed number (`2\\frac{1}{2}`). `10/2` and `9 + 73` are not: they are work left to do.
    mixed: whether whole + fraction may be a mixed number (the tree cannot tell `2\\frac{1}{2}` from `2 + 1/2`)."""
    kind = node[0]
    if kind == "num":
        return True
    if kind in ("neg", "pct"):
        return is_number(node[1], mixed)
    if kind == "div":
        a, b = _integer(node[1]), _integer(node[2])
        return a is not None and b is not None and b != 0 and a % b != 0
    if kind == "add" and mixed and len(node[1]) == 2:
        whole, part = node[1]
        return _integer(whole) is not None and part[0] == "div" and is_number(part)
    return False


def is_unevaluated(node: Node, mixed: bool = True) -> bool:
    """Arithmetic on number literals left undone (`9 + 73`, `3 \\cdot 4`, `2^{10}`, `\\sqrt{9}`, `10/2`): no
    symbols, no functions, at least one operation, and not itself a number (`is_number`)."""
    return _literal_arithmetic(node) and not is_number(node, mixed)


def _literal_arithmetic(node: Node) -> bool:
    kind = node[0]
    if kind == "num":
        return True
    if kind not in _ARITHMETIC:
        return False
    parts = node[1] if kind in ("add", "mul") else node[1:]
    return all(isinstance(p, tuple) and _literal_arithmetic(p) for p in parts)


def _integer(node: Node) -> int | None:
    """The value of an integer literal (or its negation), else None."""
    if node[0] == "neg":
        inner = _integer(node[1])
        return None if inner is None else -inner
    if node[0] == "num" and not node[2] and node[1].denominator == 1:
        return int(node[1])
    return None
