"""A synthetic task for real small models: seeded multi-step word problems about counting things.

    "Mia has 6 shells. Mia finds 4 more shells. Mia gives 3 shells to a friend. How many shells does Mia have now?"

A story starts with a count and applies 1..`max_steps` events to it, each a gain ("buys 4 more") or a loss ("gives 3
to a friend"; never all there is). Numbers stay small (a start of 2..`size`, changes up to `size` / 2), so the task
tests reading a story and carrying a count through it, not long arithmetic — where a 135M model fails anyway.
One event is twice as likely as two (`_events`). SmolLM2-135M-Instruct answers 19% of the first 200 `words_test`
problems greedily (27% of one-event stories, none of the two-event ones), and GRPO lifts that quickly (`rlvr demo
--model smollm2-135m-instruct`). The answer is a whole number; the worked
`solution` writes one equation per event and ends "The answer is N." (an SFT target).

Splits are disjoint by construction, as in `synthetic.py`: a problem belongs to test iff a sha256 of its text falls
in a fixed 10% bucket. Draws use only `Random.random()`, so a seed gives the same problems on any Python.
"""

from __future__ import annotations

import random

from rlvr.data.schema import Problem
from rlvr.data.synthetic import MAX_MISSES, SPLITS, in_test_bucket, uniform_below

NAMES = ("Tom", "Anna", "Sam", "Lily", "Ben", "Mia", "Jack", "Emma", "Leo", "Zoe", "Max", "Ella", "Noah", "Ava")  # fmt: skip
ITEMS = ("apples", "marbles", "stickers", "books", "cookies", "pencils", "cards", "coins", "shells", "balloons")  # fmt: skip
GAIN = ("{name} buys {k} more {item}.", "{name} finds {k} more {item}.", "A friend gives {name} {k} {item}.")
LOSS = ("{name} gives {k} {item} to a friend.", "{name} loses {k} {item}.", "{name} gives away {k} {item}.")


def _pick(rng: random.Random, options: tuple[str, ...]) -> str:
    return options[uniform_below(rng, len(options))]


def make_story(rng: random.Random, steps: int, size: int = 10) -> tuple[str, str, int]:
    """One problem of `steps` events: its text, its worked solution and its answer."""
    name, item = _pick(rng, NAMES), _pick(rng, ITEMS)
    count = 2 + uniform_below(rng, size - 1)
    sentences = [f"{name} has {count} {item}."]
    lines = [f"{name} starts with {count} {item}."]
    for _ in range(steps):
        if uniform_below(rng, 2) == 0 or count < 3:  # changes are 2 or more: "1 apples" reads badly
            k = 2 + uniform_below(rng, size // 2 - 1)
            sentences.append(_pick(rng, GAIN).format(name=name, k=k, item=item))
            lines.append(f"{count} + {k} = {count + k}.")
            count += k
        else:
            k = 2 + uniform_below(rng, min(size // 2, count - 1) - 1)  # something is always left
            sentences.append(_pick(rng, LOSS).format(name=name, k=k, item=item))
            lines.append(f"{count} - {k} = {count - k}.")
            count -= k
    sentences.append(f"How many {item} does {name} have now?")
    lines.append(f"The answer is {count}.")
    return " ".join(sentences), "\n".join(lines), count


def _events(rng: random.Random, max_steps: int) -> int:
    """How many events a story has: k in 1..max_steps with weight 1/k (max_steps 2: one event 2/3 of the time)."""
    weights = [1 / k for k in range(1, max_steps + 1)]
    u = rng.random() * sum(weights)
    for k, w in enumerate(weights, start=1):
        if u < w:
            return k
        u -= w
    return max_steps


def make_problems(split: str, count: int, seed: int = 0, max_steps: int = 2, size: int = 10) -> list[Problem]:
    """`count` distinct problems of `split`, 1..`max_steps` events each (`_events`), the same on any Python."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if count < 0 or max_steps < 1 or size < 4:
        raise ValueError(f"need count >= 0, max_steps >= 1, size >= 4; got {count}, {max_steps}, {size}")
    rng = random.Random(seed)
    seen: set[str] = set()
    problems: list[Problem] = []
    misses = 0
    while len(problems) < count:
        steps = _events(rng, max_steps)
        text, solution, answer = make_story(rng, steps, size)
        if text in seen or in_test_bucket(text) != (split == "test"):
            misses += 1
            if misses >= MAX_MISSES:
                raise ValueError(f"only {len(problems)} distinct {split} problems found; ask for fewer")
            continue
        misses = 0
        seen.add(text)
        problems.append(
            Problem(
                id=f"words-{split}-{len(problems)}",
                problem=text,
                answer=str(answer),
                solution=solution,
                source="synthetic",
                level=steps,
            )
        )
    return problems
