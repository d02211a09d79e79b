"""Training checkpoints that resume exactly: `RUN/checkpoints/step-NNNNNN/` holds the model and tokenizer in Hugging
Face format (loadable by transformers and vLLM as is), `trainer.pt` (optimizer state and the stage's own state:
step, data position, whatever the trainer needs) and `rng-RANK.pt` per process (torch, CUDA and Python RNGs).

The optimizer's moments are written in `optimizer_dtype` (`compact`): bfloat16 by default, half their float32
size (SmolLM2-135M: AdamW's two moments 1.08 GB -> 0.54 GB, a step checkpoint 1.6 -> 1.1 GB). Loading casts them
back to the parameters' dtype; a resumed run then differs from the uninterrupted one by that rounding at its first
step (a moment's relative error <= 2^-9). float32 keeps them as they are: the resume is bit-exact.

A checkpoint is written into `.step-NNNNNN.tmp` and renamed when every process has written its part, so a run
killed mid-save leaves the previous checkpoints intact and no half-written one that `latest` would pick up. The
newest `keep_last` are kept; older ones are renamed to `.step-NNNNNN.old` before they are deleted, so a kill
mid-delete leaves no half-deleted one listed either (bench/chaos.py).
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import torch

from rlvr.train import distributed, sharding
from rlvr.train.distributed import World

STEP_DIR = re.compile(r"^step-(\d{6,})$")


def step_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if STEP_DIR.match(p.name) and (p / "trainer.pt").exists()]
    return sorted(found, key=lambda p: int(p.name.split("-")[1]))


def latest(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(
    run_dir: Path,
    step: int,
    *,
    model: Any,
    tokenizer: Any,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    world: World,
    keep_last: int,
    modules: dict[str, Any] | None = None,
    optimizer_dtype: str = "bfloat16",
) -> Path:
    """Write checkpoint `step` (every process calls this; rank 0 writes the shared parts). `modules`: more models
    (e.g. the critic), each saved with its `save_pretrained` into the sub-directory named by its key."""
    final = step_dir(run_dir, step)
    tmp = final.with_name(f".{final.name}.tmp")
    if world.main:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    distributed.barrier()
    torch.save(rng_state(), tmp / f"rng-{world.rank}.pt")
    # sharded models and optimizers are gathered by every process (collectives), then the main one writes
    modules = modules or {}
    weights = sharding.full_state(model)
    module_weights = {name: sharding.full_state(module) for name, module in modules.items()}
    optimizer_state = compact(sharding.optimizer_state(model, optimizer), optimizer_dtype)
    if world.main:
        from transformers.utils import logging

        logging.disable_progress_bar()  # a bar per save would interleave with the training bar
        model.save_pretrained(tmp, state_dict=weights, safe_serialization=True)
        for name, module in modules.items():
            module.save_pretrained(tmp / name, state_dict=module_weights[name], safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        torch.save({"optimizer": optimizer_state, "world_size": world.size, **state}, tmp / "trainer.pt")
    distributed.barrier()
    if world.main:
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
        for old in checkpoints(run_dir)[:-keep_last] if keep_last > 0 else []:
            _remove(old)
        for stale in final.parent.glob(".step-*.old"):  # what a kill mid-delete left
            shutil.rmtree(stale, ignore_errors=True)
    distributed.barrier()
    return final


def clear_leftovers(run_dir: Path) -> None:
    """What a killed run left in its own directory: a checkpoint half-written or half-deleted, the final model's
    temporary copy. For a run that starts or resumes there: whoever wrote them is gone."""
    for pattern in ("checkpoints/.step-*.tmp", "checkpoints/.step-*.old", ".final.*.tmp", ".final.old"):
        for path in run_dir.glob(pattern):
            shutil.rmtree(path, ignore_errors=True)


def _remove(path: Path) -> None:
    """Delete a checkpoint directory, first renaming it out of `checkpoints()`'s sight: a kill during the delete
    must not leave a half-deleted directory listed as complete (its trainer.pt may outlive its weights)."""
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    os.replace(path, old)
    shutil.rmtree(old, ignore_errors=True)


def compact(state: dict[str, Any], dtype: str | torch.dtype) -> dict[str, Any]:
    """An optimizer state dict with its floating tensors (moments; not AdamW's step counts) in `dtype`."""
    if "state" not in state:  # a sharded optimizer's gather leaves the other processes nothing to write
        return state
    target = getattr(torch, dtype) if isinstance(dtype, str) else dtype

    def cast(value: Any) -> Any:
        if isinstance(value, torch.Tensor) and value.is_floating_point() and value.ndim > 0:
            return value.to(target)
        return value

    per_param = {k: {name: cast(v) for name, v in entry.items()} for k, entry in state["state"].items()}
    return {**state, "state": per_param}


def widened(state: dict[str, Any], optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """A saved optimizer state with its moments back in the dtype of `optimizer`'s parameters (a sharded load
    keeps the dtype it is given)."""
    return compact(state, optimizer.param_groups[0]["params"][0].dtype)


def save_model(model: Any, tokenizer: Any, path: Path, world: World) -> None:
    """The model as a plain Hugging Face checkpoint at `path`, written atomically by the main process (a sharded
    model is gathered first: every process calls this)."""
    from rlvr.models.checkpoint import save_checkpoint

    weights = sharding.full_state(model)
    if world.main:
        save_checkpoint(model, tokenizer, path, state_dict=weights)
    distributed.barrier()


def load(path: Path, optimizer: torch.optim.Optimizer, world: World, model: Any = None) -> dict[str, Any]:
    """Restore the optimizer and this process's RNGs from checkpoint `path`; returns the trainer state.
    (The model itself is loaded from `path` like any checkpoint, before the optimizer is built; pass it as
    `model` when it is sharded, so the optimizer takes its shard of the saved state.)"""
    sharded = model is not None and sharding.has_shards(model)
    # sharded: the whole optimizer state is mapped from the file (mmap), not read onto every process's device;
    # each process then copies out its shard
    state = torch.load(
        path / "trainer.pt", map_location="cpu" if sharded else world.device, mmap=sharded, weights_only=False
    )
    if state["world_size"] != world.size:
        raise ValueError(
            f"{path}: written by {state['world_size']} processes, resumed with {world.size}; "
            "exact resume needs the same number"
        )
    saved = widened(state.pop("optimizer"), optimizer)
    if model is None:
        optimizer.load_state_dict(saved)
    else:
        sharding.load_optimizer_state(model, optimizer, saved)
    set_rng_state(torch.load(path / f"rng-{world.rank}.pt", weights_only=False))
    return state
