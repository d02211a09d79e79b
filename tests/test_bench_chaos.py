"""bench/chaos.py in its smoke form: a tiny RL run and a tiny SFT run of 6 steps, SIGKILLed 3 times in all (two
kills aimed inside a checkpoint write) and resumed mid-run, end exactly where the uninterrupted runs end (final
weights, metrics rows, the last checkpoints), with at most one step lost per kill and no half-written checkpoint
ever listed. ~50 s on 2 cores."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "chaos.py"


def test_chaos_smoke_resumes_exactly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = importlib.util.spec_from_file_location("bench_chaos", BENCH)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_chaos", bench)  # its dataclasses look their module up
    spec.loader.exec_module(bench)
    assert bench.main(["--smoke", "--json", "--work-dir", str(tmp_path)]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    runs = summary["runs"]
    assert summary["kills"] == 3 and runs["rl"]["kills"] == 2 and runs["sft"]["kills"] == 1
    for kind, run in runs.items():  # the comparison means something: the run was resumed and trained
        assert run["attempts"] == run["kills"] + 1 and run["metrics_rows"] == 6, kind
        assert all(0 < k["resumed_from"] < 6 for k in run["per_kill"]), run["per_kill"]  # steps left to redo
        assert run["tensors"] > 0 and run["weights_identical"] and run["metrics_identical"], kind
        assert run["checkpoints_identical"], run["checkpoint_problems_at_end"]
    assert summary["identical"] is True
    assert summary["max_steps_lost"] <= 1
    assert summary["kills_in_save"] >= 1  # a step was logged, then lost with its half-written checkpoint
    assert summary["half_written_picked_up"] is False


class Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def test_a_kill_while_pruning_leaves_no_half_deleted_checkpoint_listed(tmp_path, monkeypatch):
    """What the chaos bench found: killed while `keep_last` deleted an old checkpoint, a run left a directory with
    its trainer.pt but not its tokenizer, and `checkpoints()` listed it as complete. Old checkpoints are now renamed
    out of the listing before they are deleted, and what a kill left is cleared by the next save."""
    import shutil

    import torch

    from rlvr.models.tiny import build_tiny_pair
    from rlvr.train import checkpoint
    from rlvr.train.distributed import World

    model, tokenizer = build_tiny_pair()
    optimizer = torch.optim.AdamW(model.parameters())
    world = World(0, 1, 0, torch.device("cpu"))

    def save(step: int) -> None:
        checkpoint.save(
            tmp_path, step, model=model, tokenizer=tokenizer, optimizer=optimizer, state={"step": step},
            world=world, keep_last=2,
        )  # fmt: skip

    save(1)
    save(2)
    rmtree = shutil.rmtree

    def killed_mid_delete(path, ignore_errors=False):
        path = Path(path)
        if not path.is_dir():
            return rmtree(path, ignore_errors=ignore_errors)
        (path / "tokenizer.json").unlink()  # the first file gone, trainer.pt still there
        raise Killed

    monkeypatch.setattr(shutil, "rmtree", killed_mid_delete)
    with pytest.raises(Killed):
        save(3)  # written and renamed; killed while deleting step 1
    monkeypatch.setattr(shutil, "rmtree", rmtree)
    listed = checkpoint.checkpoints(tmp_path)
    assert [p.name for p in listed] == ["step-000002", "step-000003"]
    for path in listed:
        assert {"config.json", "model.safetensors", "tokenizer.json", "trainer.pt", "rng-0.pt"} <= {
            f.name for f in path.iterdir()
        }, path
    save(4)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step-000003", "step-000004"]
