"""What an RL run logs agrees with itself: samples.jsonl numbers steps as metrics.jsonl does, mid-run evaluations
log truncation and the n and temperature they sampled at, like the before/after ones, and rewards (and the stored
samples) see a template's assistant prefix followed by the completion."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from rlvr.config import load_config
from rlvr.rewards.functions import REWARDS
from rlvr.train import distributed
from rlvr.train.metrics import read_metrics
from rlvr.train.rl import RLConfig, Trainer

SEEN: list[str] = []


def spy(response: str, gold: str, final_form: bool = False) -> float:
    SEEN.append(response)
    return float(len(response) % 2)  # mixed rewards, so groups are kept


@pytest.fixture(scope="module")
def run(digits: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("rl") / "run"
    args = [
        "model=tiny", f"data={digits}", f"eval_data={digits}", "eval_problems=4", "eval_every=1", "eval_n=2",
        f"out_dir={out}", "prompts_per_step=4", "stages=[{steps: 2, max_new_tokens: 6, n: 4}]",
        "micro_batch_size=64", "sample_every=1", "reward=spy", "template={prefix: <think>}",
    ]  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(REWARDS, "spy", spy)
        figures = Trainer(
            load_config(RLConfig, None, args), distributed.init("cpu"), resume=False, progress=False
        ).train()
    return out, figures


def test_samples_are_numbered_like_the_metrics(run) -> None:
    out, _ = run
    steps = {row["step"] for row in read_metrics(out / "metrics.jsonl") if "train/loss" in row}
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert steps == {1, 2} and {s["step"] for s in samples} == steps


def test_every_evaluation_logs_truncation_n_and_temperature(run) -> None:
    out, figures = run
    rows = [row for row in read_metrics(out / "metrics.jsonl") if "eval/accuracy" in row]
    # before, every step; the last step's evaluation is the after (the same weights are not evaluated twice)
    assert [row["step"] for row in rows] == [0, 1, 2]
    assert figures["eval/accuracy_after"] == rows[-1]["eval/accuracy"]
    assert figures["eval/truncated_before"] == rows[0]["eval/truncated"]
    for row in rows:
        assert 0 <= row["eval/truncated"] <= 1
        assert (row["eval/n"], row["eval/temperature"], row["eval/problems"]) == (2, 0.0, 4)
    assert (figures["eval/n"], figures["eval/temperature"], figures["eval/problems"]) == (2, 0.0, 4)


def test_rewards_and_samples_see_the_prefix_then_the_completion(run) -> None:
    out, _ = run
    assert len(SEEN) == 2 * 4 * 4 and all(text.startswith("<think>") for text in SEEN)
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert all(s["response"].startswith("<think>") for s in samples)
    assert {s["response"] for s in samples} <= set(SEEN)


def test_a_restart_keeps_no_sample_row_twice_and_clears_what_a_kill_left(tmp_path: Path) -> None:
    from rlvr.train.checkpoint import clear_leftovers
    from rlvr.train.experience import keep_samples_until

    samples = tmp_path / "samples.jsonl"
    rows = [json.dumps({"step": s, "response": "x"}) for s in (1, 1, 2, 3)]
    samples.write_text("\n".join(rows) + '\n{"step": 4, "resp')  # a line cut by the kill
    keep_samples_until(samples, 2)  # resuming from step 2's checkpoint: step 3 is done again
    assert [json.loads(line)["step"] for line in samples.read_text().splitlines()] == [1, 1, 2]
    keep_samples_until(samples, 0)  # a fresh start
    assert samples.read_text() == ""
    left = [tmp_path / "checkpoints" / ".step-000003.tmp", tmp_path / ".final.abc123.tmp"]
    kept = tmp_path / "checkpoints" / "step-000002"
    for path in [*left, kept]:
        path.mkdir(parents=True)
    clear_leftovers(tmp_path)
    assert not any(p.exists() for p in left) and kept.exists()
