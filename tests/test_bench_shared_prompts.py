"""bench/shared_prompts.py in its smoke form (the tiny model): it runs both sides of one GRPO group, checks they
agree, and its last stdout line is the JSON summary."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "shared_prompts.py"


def test_shared_prompts_bench_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_shared_prompts", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    assert bench.main(["--model", "tiny", "--repeats", "1", "--prompt-tokens", "40", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["prompt_tokens"] == 40 and summary["n"] == 8
    tokens = summary["backbone_tokens"]
    assert tokens["shared"] == 40 + summary["response_tokens"] < tokens["padded"]  # the prompt once
    assert summary["logp_abs_diff_max"] < 1e-4 and summary["grad_cosine"] > 0.9999
    assert summary["padded_s"] > 0 and summary["shared_s"] > 0
