"""Eval chunks sized by a token budget; a killed eval continues, under a smaller or larger --limit, sampling only
the problems not on disk; what may and may not change between reruns; the table with one sample per problem."""

from __future__ import annotations

import argparse
import io
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from rlvr.data.registry import load_dataset
from rlvr.data.schema import Problem
from rlvr.eval import run as eval_run
from rlvr.eval.evaluate import (
    CPU_CHUNK_TOKENS,
    GPU_CHUNK_TOKENS,
    EvalSettings,
    plan_chunks,
    sample_and_grade,
)
from rlvr.eval.metrics import SampleRecord, summarize
from rlvr.models.tiny import build_tiny_pair
from rlvr.rollout.fast import FastEngine
from rlvr.rollout.types import Rollout, SamplingParams


class Killed(Exception):
    pass


class Counting:
    """The tiny model's fast engine, counting prompts per generate call; the call after `die_after` raises
    (a kill between two chunks)."""

    def __init__(self, engine: FastEngine, die_after: int | None = None) -> None:
        self.engine, self.die_after, self.calls = engine, die_after, list[int]()

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        if self.die_after is not None and len(self.calls) == self.die_after:
            raise Killed
        self.calls.append(len(prompts))
        return self.engine.generate(prompts, params)


def test_plan_chunks_fills_the_token_budget() -> None:
    # cost of a chunk = problems x n x (its longest prompt + max_new_tokens); n = 2, max_new_tokens = 10
    lengths = [10, 10, 30, 10, 10]
    assert plan_chunks(lengths, 2, 10, 100) == [
        range(0, 2),
        range(2, 3),
        range(3, 5),
    ]  # 80; 80 (3 would be 240)
    assert plan_chunks(lengths, 2, 10, 10) == [
        range(i, i + 1) for i in range(5)
    ]  # over budget: one at a time
    assert plan_chunks(lengths, 2, 10, 10**6) == [range(0, 5)]
    for k in range(1, 5):  # the first k problems' chunks are the same chunks, the last one cut at k
        whole = [range(c.start, min(c.stop, k)) for c in plan_chunks(lengths, 2, 10, 100) if c.start < k]
        assert plan_chunks(lengths[:k], 2, 10, 100) == whole
    assert EvalSettings().on_device(gpu=False).chunk_tokens == CPU_CHUNK_TOKENS
    assert EvalSettings().on_device(gpu=True).chunk_tokens == GPU_CHUNK_TOKENS
    assert EvalSettings(chunk_tokens=7).on_device(gpu=True).chunk_tokens == 7


def test_the_command_line_budget_follows_the_device() -> None:
    parser = argparse.ArgumentParser()
    eval_run.add_arguments(parser)
    settings = eval_run.settings_of(parser.parse_args(["m", "--device", "cpu"]))
    assert settings.chunk_tokens == CPU_CHUNK_TOKENS
    assert eval_run.settings_of(parser.parse_args(["m", "--engine", "vllm"])).chunk_tokens == GPU_CHUNK_TOKENS
    assert eval_run.settings_of(parser.parse_args(["m", "--chunk-tokens", "500"])).chunk_tokens == 500


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = build_tiny_pair(seed=0)
    return model.eval(), tokenizer


def test_a_killed_eval_continues_under_a_smaller_then_a_larger_limit(tiny, tmp_path: Path) -> None:
    model, tokenizer = tiny
    problems = load_dataset("arith_test")[:6]
    # 2 problems per chunk: 2 x 2 x (<= 26 prompt tokens + 8) <= 150 < 3 x 2 x (>= 23 + 8)
    settings = EvalSettings(n=2, max_new_tokens=8, template="plain", chunk_tokens=150)

    def run(path: Path, limit: int, die_after: int | None = None) -> tuple[list[SampleRecord], list[int]]:
        engine = Counting(FastEngine(model, tokenizer), die_after)
        limited = replace(settings, limit=limit)
        return sample_and_grade(problems, limited, tokenizer, engine, path), engine.calls

    full, calls = run(tmp_path / "full.jsonl", 6)
    assert calls == [2, 2, 2]
    path = tmp_path / "killed.jsonl"
    with pytest.raises(Killed):
        run(path, 6, die_after=2)  # problems 0-3 saved, then killed
    assert len(path.read_text().splitlines()) == 8
    records, calls = run(path, 3)
    assert calls == [] and records == full[:6]  # a smaller limit: answered from disk alone
    records, calls = run(path, 5)
    assert calls == [1] and len(records) == 10  # only problem 4 (its chunk, cut at the limit)
    records, calls = run(path, 6)
    assert calls == [1] and records[:8] == full[:8]  # then only problem 5
    assert len(path.read_text().splitlines()) == 12


def scripted(prompts: list[str], params: SamplingParams) -> list[Rollout]:
    return [
        Rollout(i, j, [], [1], "<answer>3</answer>", [], "stop")
        for i in range(len(prompts))
        for j in range(params.n)
    ]


class Script:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        self.calls.append(len(prompts))
        return scripted(prompts, params)


def test_a_rerun_may_change_the_limit_and_budget_but_not_what_a_sample_is(tiny, tmp_path: Path) -> None:
    _, tokenizer = tiny
    problems = {"toy": [Problem(f"p{i}", f"1+{i}", str(1 + i)) for i in range(4)]}
    out = tmp_path / "run"
    engine = Script()
    eval_run.run_benchmarks(problems, EvalSettings(n=2, template="plain", limit=4), out, tokenizer, engine)
    assert sum(engine.calls) == 4
    again = EvalSettings(n=2, template="plain", limit=2, chunk_tokens=50)
    summaries = eval_run.run_benchmarks(problems, again, out, tokenizer, engine)
    assert sum(engine.calls) == 4 and summaries["toy"].problems == 2
    other = EvalSettings(n=2, template="qwen_math", limit=2)
    with pytest.raises(
        ValueError, match=r"other settings \(template='plain' there, 'qwen_math' now\); use an"
    ) as e:
        eval_run.run_benchmarks(problems, other, out, tokenizer, engine)
    assert "\n" not in str(e.value)


def test_one_sample_per_problem_shows_one_accuracy_column() -> None:
    records = [SampleRecord(f"p{i}", 0, "t", "1", i % 2 == 0, 5, "stop") for i in range(4)]
    table = eval_run.results_markdown(
        "m", {"toy": summarize(records, bootstrap=0)}, sampling="n=1 at T=0 greedy"
    )
    assert "| Benchmark | problems | n | accuracy | len correct | len wrong | truncated |" in table
    assert "| toy | 4 | 1 | 50.0 | 5 | 5 | 0.0% |" in table
    assert "maj@" not in table and "Sampling: n=1 at T=0 greedy." in table
    two = [SampleRecord(r.problem_id, j, "t", "1", r.correct, 5, "stop") for r in records for j in range(2)]
    table = eval_run.results_markdown("m", {"toy": summarize(two, bootstrap=0)})
    assert "| Benchmark | problems | n | pass@1 | pass@2 | maj@2 |" in table


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_bar_counts_problems_on_a_terminal_only(tiny, monkeypatch: pytest.MonkeyPatch) -> None:
    _, tokenizer = tiny
    problems = [Problem(f"p{i}", f"1+{i}", str(1 + i)) for i in range(3)]
    settings = EvalSettings(n=2, template="plain", chunk_tokens=1)
    for stream, shown in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        sample_and_grade(problems, settings, tokenizer, Script(), progress="toy")
        assert ("toy: 100%" in stream.getvalue() and "3/3" in stream.getvalue()) == shown
