"""Numeric evaluation of scalar expression trees, exact where it can be.

Values are `Fraction` (exact rationals: `1/2^{99}` and `1/2^{98}` differ) or `complex` (anything irrational). Every
operation has a bounded cost: a power whose result would have more than ~64K bits, a factorial past 1000, a float
overflow or a division by zero raises `Inconclusive`, and the caller falls back to comparing structure. That is what
makes `5^{5^{5^{5^5}}}` cost microseconds instead of hanging. Free symbols take the values given in `env`; functions
we do not know (`\\sum`, `f(x)`-style opaque calls) become a fixed pseudo-random function of their arguments, so the same
call on both sides gives the same value and different calls differ.
"""

from __future__ import annotations

import cmath
import hashlib
import math
import time
from fractions import Fraction

from rlvr.rewards.parse import Node

Value = Fraction | complex
MAX_BITS = 1 << 16  # exact results larger than this are not computed
INF = complex(math.inf, 0)


class Inconclusive(Exception):
    """The value cannot be computed cheaply or does not exist (huge, undefined, unknown)."""


class TimeLimit(Exception):
    """The per-call time budget is spent."""


class Deadline:
    """A cooperative time limit, checked at every tree node; works in any thread."""

    __slots__ = ("end",)

    def __init__(self, seconds: float):
        self.end = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise TimeLimit()


def approx(v: Value) -> complex:
    """`v` as a complex float; a rational past the float range (10^{400}) has none: Inconclusive."""
    if isinstance(v, Fraction):
        try:
            return complex(v)
        except OverflowError as e:
            raise Inconclusive("beyond float range") from e
    return v


def evaluate(node: Node, env: dict[str, Value], deadline: Deadline) -> Value:
    """The value of a scalar tree. Raises Inconclusive (no value) or TimeLimit."""
    deadline.check()
    kind = node[0]
    if kind == "num":
        return node[1]
    if kind == "sym":
        name = node[1]
        if name == "i":
            return complex(0, 1)
        if name in env:
            return env[name]
        raise Inconclusive(f"free symbol {name}")
    if kind == "const":
        return {"pi": complex(math.pi), "inf": INF}.get(node[1], INF)
    if kind == "neg":
        return -evaluate(node[1], env, deadline)
    if kind == "pct":
        return evaluate(node[1], env, deadline)
    if kind == "add":
        total: Value = Fraction(0)
        for t in node[1]:
            total = _add(total, evaluate(t, env, deadline))
        return total
    if kind == "mul":
        prod: Value = Fraction(1)
        for f in node[1]:
            prod = _mul(prod, evaluate(f, env, deadline))
        return prod
    if kind == "div":
        return _div(evaluate(node[1], env, deadline), evaluate(node[2], env, deadline))
    if kind == "pow":
        return power(evaluate(node[1], env, deadline), evaluate(node[2], env, deadline))
    if kind == "func":
        return _function(node[1], [evaluate(a, env, deadline) for a in node[2]])
    if kind == "base":
        try:
            return Fraction(int(node[1], int(node[2])))
        except ValueError as e:
            raise Inconclusive("bad base") from e
    raise Inconclusive(f"not a scalar: {kind}")


def _finite(z: complex) -> complex:
    if cmath.isnan(z):
        raise Inconclusive("nan")
    return z


def _add(a: Value, b: Value) -> Value:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a + b
    return _finite(approx(a) + approx(b))


def _mul(a: Value, b: Value) -> Value:
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        if a.numerator.bit_length() + b.numerator.bit_length() > MAX_BITS:
            raise Inconclusive("huge")
        return a * b
    if a == 0 or b == 0:
        return Fraction(0)
    return _finite(approx(a) * approx(b))


def _div(a: Value, b: Value) -> Value:
    if b == 0:
        raise Inconclusive("division by zero")
    if isinstance(a, Fraction) and isinstance(b, Fraction):
        return a / b
    return _finite(approx(a) / approx(b))


def _bits(x: Fraction) -> int:
    return x.numerator.bit_length() + x.denominator.bit_length()


def _exact_root(x: int, n: int) -> int | None:
    if x < 0 or x.bit_length() > MAX_BITS:
        return None
    r = round(x ** (1.0 / n)) if x.bit_length() < 1000 else None
    if r is None:
        return None
    for c in (r - 1, r, r + 1):
        if c >= 0 and c**n == x:
            return c
    return None


def power(b: Value, e: Value) -> Value:
    try:
        return _power(b, e)
    except (OverflowError, ZeroDivisionError, ValueError) as err:
        raise Inconclusive("power") from err


def _power(b: Value, e: Value) -> Value:
    if isinstance(b, Fraction) and isinstance(e, Fraction):
        if e.denominator == 1:
            n = e.numerator
            if b == 0 and n < 0:
                raise Inconclusive("division by zero")
            if b in (0, 1):
                return b
            if b == -1:
                return Fraction(1 if n % 2 == 0 else -1)
            if abs(n) * _bits(b) > MAX_BITS:
                raise Inconclusive("huge power")
            return b**n
        if e.denominator <= 64 and abs(e.numerator) <= 64:
            sign = 1
            if b < 0:
                if e.denominator % 2 == 0:
                    return _finite(complex(b) ** complex(e))
                sign, b = -1, -b
            num = _exact_root(b.numerator, e.denominator)
            den = _exact_root(b.denominator, e.denominator)
            if num is not None and den is not None:
                return _power(Fraction(sign * num, den), Fraction(e.numerator))
            root = float(b) ** (1.0 / e.denominator) * sign
            return _finite(complex(root) ** e.numerator)
    zb, ze = approx(b), approx(e)
    if zb == 0:
        return Fraction(0)
    if abs(ze) > 1e4 or (abs(zb) > 1 and abs(ze) * math.log(abs(zb)) > 700):
        raise Inconclusive("huge power")
    return _finite(zb**ze)


_TRIG = {
    "sin": cmath.sin, "cos": cmath.cos, "tan": cmath.tan, "arcsin": cmath.asin, "arccos": cmath.acos,
    "arctan": cmath.atan, "sinh": cmath.sinh, "cosh": cmath.cosh, "tanh": cmath.tanh, "exp": cmath.exp,
}  # fmt: skip


def _function(name: str, args: list[Value]) -> Value:
    try:
        return _known_function(name, args)
    except (OverflowError, ValueError, ZeroDivisionError) as e:
        raise Inconclusive(name) from e


def _known_function(name: str, args: list[Value]) -> Value:
    if name in _TRIG and len(args) == 1:
        z = approx(args[0])
        if abs(z) > 1e6:
            raise Inconclusive("argument too large")
        return _finite(_TRIG[name](z))
    if name in ("sec", "csc", "cot") and len(args) == 1:
        f = {"sec": cmath.cos, "csc": cmath.sin, "cot": cmath.tan}[name]
        return _div(Fraction(1), _finite(f(approx(args[0]))))
    if name in ("ln", "log", "lg") and args:
        z = approx(args[0])
        if z == 0:
            raise Inconclusive("log 0")
        value = cmath.log(z)
        base = approx(args[1]) if len(args) == 2 else (10 if name == "lg" else None)
        return _finite(value / cmath.log(base)) if base is not None else value
    if name == "abs" and len(args) == 1:
        a = args[0]
        return abs(a) if isinstance(a, Fraction) else complex(abs(a))
    if name == "factorial" and len(args) == 1:
        a = args[0]
        if isinstance(a, Fraction) and a.denominator == 1 and 0 <= a <= 1000:
            return Fraction(math.factorial(int(a)))
        raise Inconclusive("factorial")
    if name == "binom" and len(args) == 2 and all(_is_int(a) for a in args):
        n, k = (int(a) for a in args)  # type: ignore[arg-type]
        if 0 <= n <= 5000:
            return Fraction(math.comb(n, k) if k >= 0 else 0)
    if name in ("gcd", "lcm") and args and all(_is_int(a) for a in args):
        ints = [int(a) for a in args]  # type: ignore[arg-type]
        return Fraction(math.gcd(*ints) if name == "gcd" else math.lcm(*ints))
    if name in ("max", "min") and args and all(isinstance(a, Fraction) for a in args):
        return max(args) if name == "max" else min(args)  # type: ignore[type-var]
    return _opaque(name, args)


def _is_int(a: Value) -> bool:
    return isinstance(a, Fraction) and a.denominator == 1


def _opaque(name: str, args: list[Value]) -> Value:
    """A fixed pseudo-random value for a call we cannot compute: equal calls agree, different ones differ."""
    key = name + "|" + "|".join(f"{approx(a).real:.9g},{approx(a).imag:.9g}" for a in args)
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return complex(1.0 + h / 2**64)
