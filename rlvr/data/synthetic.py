"""A synthetic task for the tiny world: add two non-negative integers, with a worked column addition.

A problem is the bare sum, `"457+68"`. Its solution is the complete R1-format response, the SFT target verbatim:
one line per column from the ones upwards, `x+y=s` with `+1` after `y` when the column below carried, a missing
digit written as 0, then the sum:

    <think>7+8=15\\n5+6+1=12\\n4+0+1=5\\n</think><answer>525</answer>

Each line needs only the two digits of its column and whether the line above has a two-digit result; the answer is
the last line's result followed by the ones digit of each earlier line, bottom to top. Kept short on purpose (every
character is a decode step): 30-60 characters for three-digit operands.

An operand has 1..`max_digits` digits, the count drawn uniformly, then the number uniformly among numbers with that
many digits (0 counts as one digit). Duplicates within a split are redrawn, and short pairs are few (100 with two
one-digit operands), so a large split tilts towards long operands: 20,000 train problems with max_digits=3 have
levels 1/2/3 in 0.5/21/78% (the draws alone would give 11/33/56%).

Train and test are disjoint by construction: the unordered pair {a, b} belongs to test iff a sha256 of it falls in
a fixed 10% bucket, and each split rejects the other's pairs, whatever the seed or count. Unordered, so the test
problem 457+68 never appears in train as 68+457 either. Draws use only `Random.random()`, the one output Python
promises to keep across versions, so a seed gives the same problems everywhere.

Not here: other operations, negative numbers, carries written as their own lines, a prompt template.
"""

from __future__ import annotations

import hashlib
import random

from rlvr.data.schema import Problem

SPLITS = ("train", "test")
TEST_PERCENT = 10  # share of unordered pairs held out for test
MAX_DIGITS = 15  # beyond this `random()` (53 bits) no longer reaches every operand
MAX_MISSES = 100_000  # consecutive rejected draws after which a split counts as exhausted


def in_test_bucket(key: str) -> bool:
    """Whether `key` falls in the fixed TEST_PERCENT% bucket of a stable hash (sha256): the test split of a
    generated set, the same on any machine and for any seed."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100 < TEST_PERCENT


def in_test(a: int, b: int) -> bool:
    """Whether the pair belongs to the test split (a stable hash of the unordered pair)."""
    lo, hi = sorted((a, b))
    return in_test_bucket(f"{lo}+{hi}")


def worked_solution(a: int, b: int) -> str:
    """The complete response for a+b: column lines inside <think>, then the sum inside <answer>."""
    xs, ys = str(a)[::-1], str(b)[::-1]  # ones digit first
    lines: list[str] = []
    carry = 0
    for i in range(max(len(xs), len(ys))):
        x = int(xs[i]) if i < len(xs) else 0
        y = int(ys[i]) if i < len(ys) else 0
        total = x + y + carry
        lines.append(f"{x}+{y}{'+1' if carry else ''}={total}\n")
        carry = total // 10
    return f"<think>{''.join(lines)}</think><answer>{a + b}</answer>"


def make_problem(a: int, b: int, split: str, index: int) -> Problem:
    """One problem; `level` is the number of digits of the longer operand."""
    if a < 0 or b < 0:
        raise ValueError(f"operands must be non-negative, got {a} and {b}")
    return Problem(
        id=f"arith-{split}-{index}",
        problem=f"{a}+{b}",
        answer=str(a + b),
        solution=worked_solution(a, b),
        source="synthetic",
        level=max(len(str(a)), len(str(b))),
    )


def make_problems(split: str, count: int, seed: int = 0, max_digits: int = 3) -> list[Problem]:
    """`count` distinct problems of `split` ("train" or "test"), the same for the same arguments on any Python."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if count < 0:
        raise ValueError(f"count must be non-negative, got {count}")
    if not 1 <= max_digits <= MAX_DIGITS:
        raise ValueError(f"max_digits must be in 1..{MAX_DIGITS}, got {max_digits}")
    rng = random.Random(seed)
    want_test = split == "test"
    seen: set[tuple[int, int]] = set()
    problems: list[Problem] = []
    misses = 0
    while len(problems) < count:
        a, b = _operand(rng, max_digits), _operand(rng, max_digits)
        if (a, b) in seen or in_test(a, b) != want_test:
            misses += 1
            if misses >= MAX_MISSES:
                raise ValueError(
                    f"only {len(problems)} distinct {split} problems found with max_digits={max_digits}; "
                    f"ask for fewer or allow more digits"
                )
            continue
        misses = 0
        seen.add((a, b))
        problems.append(make_problem(a, b, split, len(problems)))
    return problems


def _operand(rng: random.Random, max_digits: int) -> int:
    digits = 1 + uniform_below(rng, max_digits)
    lo = 0 if digits == 1 else 10 ** (digits - 1)
    return lo + uniform_below(rng, 10**digits - lo)


def uniform_below(rng: random.Random, n: int) -> int:
    """Uniform in [0, n) from `random()` alone (`randrange` is not promised to stay the same across versions)."""
    return min(int(rng.random() * n), n - 1)
