"""Decontamination: drop training problems that leak an evaluation problem.

Two checks, each against every problem of every eval set given:

`ngram_contaminated` — shared word n-grams (n = 8), tokens from `rlvr.data.words` (case, LaTeX layout, `$`,
punctuation and [asy] figures ignored), so a copy that differs only in layout still matches. Departure from the
plain rule "any shared 8-gram" (open-r1, Tulu 3): on AIME 1983-2023 against the eval files that rule flags 576
of 975 problems and most pairs are unrelated — competition prose repeats long phrases ("... is m/n, where m and
n are relatively prime positive integers. Find m+n", 18 tokens). Two changes leave 107, of which 101 are copies
or rewordings of the eval problem when read by hand (94%):
  1. Boilerplate is not evidence: an n-gram found in more than `max_df` (5) distinct problems of the pool (all
     eval problems plus the training problems given, each distinct token sequence once) is ignored. A real
     problem's n-grams occur in a handful of copies at most (eval set, MATH, AIME, another eval set), so run
     this after dedup, or rewordings of one leaked problem may add up to look like boilerplate.
  2. One coincidence is not a copy: the shared n-grams must be at least `min_overlap` (0.3) of the eval
     problem's distinctive n-grams, or of all the training problem's n-grams (a short training problem inside a
     long eval problem). Reworded copies (MATH's versions of AIME problems) score 0.3-1.0; verbatim ones 1.0.
  `max_df=None, min_overlap=0.0` gives the plain rule back.
On MATH train against MATH-500 the hits are mostly siblings rather than copies: one template with other numbers
or another question on the same setup ("Altitudes AD and BE ... If angle BAC = 46 ..." vs "= 54 ..."). Whether
those count as leaks is a recipe's choice; raising `min_overlap` to 0.7 keeps about a quarter of the hits.
A problem shorter than n tokens is one "n-gram" of all its tokens, so it matches only a whole-text equal.

`exact_ignoring_digits` — Light-R1's check: equal once lowercased and every digit, `$` and whitespace is removed,
so a numeric variant of an eval problem counts. Deliberately broad: short templates ("Compute
$\\dbinom{10}{5}$.") match their eval twins ("Compute $\\dbinom{8}{4}$.").

Neither sees paraphrases in other words or translations. Removals name the eval problem as
`other_id = "<set>:<eval id>"`, e.g. "math500:test/algebra/1.json", and `score` is the overlap.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence

from rlvr.data.dedup import normalize_text
from rlvr.data.removed import Removed
from rlvr.data.schema import Problem
from rlvr.data.words import words

MAX_DF = 5  # an n-gram in more distinct problems than this is boilerplate
MIN_OVERLAP = 0.3  # fraction of the eval problem's distinctive n-grams (or the training problem's) shared
_IGNORED = re.compile(r"[\d\s$]+")


def ngram_contaminated(
    problems: Sequence[Problem],
    eval_sets: Mapping[str, Sequence[Problem]],
    n: int = 8,
    *,
    max_df: int | None = MAX_DF,
    min_overlap: float = MIN_OVERLAP,
) -> tuple[list[Problem], list[Removed]]:
    """Split `problems` into (kept, removed) by shared n-grams with eval problems (module docstring).

    Each removal is reported against the eval problem with the highest overlap. N-grams are held as hashes, so
    the eval side of 10K problems is a few hundred thousand ints and each training problem costs one dict
    lookup per n-gram.
    """
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    keys = [f"{name}:{e.id}" for name, evals in eval_sets.items() for e in evals]
    eval_toks = [words(e.problem) for evals in eval_sets.values() for e in evals]
    train_toks = [words(p.problem) for p in problems]
    eval_grams = [set(_hashes(t, n)) for t in eval_toks]
    if max_df is not None:
        df = _document_frequency(eval_toks + train_toks, set().union(*eval_grams), n)
        eval_grams = [{h for h in grams if df[h] <= max_df} for grams in eval_grams]
    index: dict[int, list[int]] = {}
    for i, grams in enumerate(eval_grams):
        for h in grams:
            index.setdefault(h, []).append(i)
    kept: list[Problem] = []
    removed: list[Removed] = []
    for p, toks in zip(problems, train_toks, strict=True):
        mine = set(_hashes(toks, n))
        shared = Counter(i for h in mine for i in index.get(h, ()))
        scored = [(max(c / len(eval_grams[i]), c / len(mine)), -i) for i, c in shared.items()]
        best = max(scored, default=None)
        if best is None or best[0] < min_overlap:
            kept.append(p)
            continue
        score, i = best[0], -best[1]
        removed.append(
            Removed(p.id, _reason(toks, n, eval_grams[i], shared[i], keys[i]), keys[i], round(score, 3))
        )
    return kept, removed


def exact_ignoring_digits(
    problems: Sequence[Problem], eval_sets: Mapping[str, Sequence[Problem]]
) -> tuple[list[Problem], list[Removed]]:
    """Split `problems` into (kept, removed): removed ones equal an eval problem once digits, `$` and spaces go."""
    index: dict[str, str] = {}
    for name, evals in eval_sets.items():
        for e in evals:
            if key := _without_digits(e.problem):
                index.setdefault(key, f"{name}:{e.id}")
    kept: list[Problem] = []
    removed: list[Removed] = []
    for p in problems:
        key = _without_digits(p.problem)
        other = index.get(key) if key else None
        if other is None:
            kept.append(p)
        else:
            removed.append(Removed(p.id, f"same text as {other} ignoring digits", other_id=other))
    return kept, removed


def _grams(toks: list[str], n: int) -> Iterator[tuple[str, ...]]:
    """Word n-grams in text order; a text shorter than n is its own single gram (so compared whole)."""
    if len(toks) < n:
        if toks:
            yield tuple(toks)
        return
    for i in range(len(toks) - n + 1):
        yield tuple(toks[i : i + n])


def _hashes(toks: list[str], n: int) -> Iterator[int]:
    return (hash(g) for g in _grams(toks, n))  # str hashes are salted per process; never stored


def _document_frequency(texts: list[list[str]], wanted: set[int], n: int) -> Counter[int]:
    """For the n-grams in `wanted`: in how many distinct token sequences of `texts` each occurs."""
    df: Counter[int] = Counter()
    seen: set[int] = set()
    for toks in texts:
        key = hash(tuple(toks))
        if key not in seen:
            seen.add(key)
            df.update(h for h in set(_hashes(toks, n)) if h in wanted)
    return df


def _reason(toks: list[str], n: int, eval_grams: set[int], count: int, key: str) -> str:
    if len(toks) < n:
        return f"whole text equals {key} (shorter than {n} tokens)"
    example = next(g for g in _grams(toks, n) if hash(g) in eval_grams)
    return f"{count} distinctive {n}-grams shared with {key}, e.g. {' '.join(example)!r}"


def _without_digits(text: str) -> str:
    return _IGNORED.sub("", normalize_text(text))
