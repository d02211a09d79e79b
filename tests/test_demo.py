"""The README's main job, `rlvr demo`, in a reduced configuration: it runs end to end and GRPO raises accuracy."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from rlvr.cli import main

ROOT = Path(__file__).resolve().parents[1]


def test_readme_main_job_is_the_demo() -> None:
    first = (ROOT / "README.md").read_text().splitlines()[3]
    assert re.search(r"&& rlvr demo\s+# set-up \+ the main job", first)


def test_reduced_demo_raises_held_out_accuracy(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--rl-steps", "40", "--eval-problems", "200", "--json"]
    assert main(args) == 0
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["after"]["accuracy"] > figures["before"]["accuracy"]
    assert figures["before"]["accuracy"] > 0.05  # the cold start works: RL has something to sharpen
    for name in ("reward", "accuracy", "length", "truncation"):
        assert (out / "plots" / f"{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = (out / "report.md").read_text()
    assert "| held-out accuracy, sampled (%) |" in report and "plots/accuracy.png" in report
    assert (out / "sft" / "final" / "model.safetensors").exists() and (out / "rl" / "final").is_dir()
    assert (out / "rl" / "samples.jsonl").exists()
