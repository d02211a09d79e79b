"""The seeded word problems of the real-model demo: worked solutions, seeding, disjoint splits, the registry."""

from __future__ import annotations

import re

import pytest

from rlvr.data import registry
from rlvr.data.synthetic import in_test_bucket
from rlvr.data.word_problems import make_problems
from rlvr.rewards import verify


def test_each_solution_computes_its_answer_event_by_event() -> None:
    for p in make_problems("train", 2000, seed=3):
        start = int(re.match(r"\w+ has (\d+) ", p.problem).group(1))  # type: ignore[union-attr]
        events = re.findall(r"(\d+) ([+-]) (\d+) = (\d+)\.", p.solution or "")
        assert len(events) == p.level and int(events[0][0]) == start
        count = start
        for a, op, b, c in events:
            assert int(a) == count and int(c) == (int(a) + int(b) if op == "+" else int(a) - int(b))
            assert int(b) >= 2 and int(c) >= 1  # changes read "2 apples" or more; something is always left
            count = int(c)
        assert p.answer == str(count) and verify(p.solution or "", p.answer, final_form=True).correct


def test_the_same_seed_gives_the_same_problems_and_splits_are_disjoint() -> None:
    first = [p.to_dict() for p in make_problems("train", 300, seed=1)]
    assert first == [p.to_dict() for p in make_problems("train", 300, seed=1)]
    assert first != [p.to_dict() for p in make_problems("train", 300, seed=2)]
    train = {p.problem for p in make_problems("train", 5000, seed=0)}
    test = {p.problem for p in make_problems("test", 500, seed=0)}
    assert (
        not train & test
        and all(in_test_bucket(t) for t in test)
        and not any(in_test_bucket(t) for t in train)
    )
    assert {p.level for p in make_problems("test", 200)} == {1, 2}


def test_bad_arguments_are_one_line() -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        make_problems("dev", 3)
    with pytest.raises(ValueError, match="size >= 4"):
        make_problems("train", 3, size=2)


def test_registered_as_words_and_words_test_graded_in_final_form() -> None:
    problems = registry.load_dataset("words_test")
    assert len(problems) == 500 and problems[0].id == "words-test-0"
    assert registry.records_digest(problems) == (registry.GENERATED["words_test"].sha256, 500)
    assert registry.final_form("words") and registry.final_form("words_test")
