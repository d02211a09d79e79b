"""Data parallelism across processes started by `torchrun`, by explicit gradient all-reduce.

Each process holds a full model replica (unless `sharding: fsdp`, `rlvr.train.sharding`) and its share of every
global batch. After the micro-batches of one optimizer step have accumulated their gradients, `all_reduce_grads`
sums them across processes in one flat buffer per dtype: what DDP does with `no_sync` during accumulation, with
no wrapper and no hooks to keep in step. Losses are already
divided by the global normaliser (tokens of the whole batch on all processes), so the sum is the full-batch
gradient and a 2-process run matches a 1-process run of the same global batch.

Backends: gloo on CPU, nccl on CUDA. Without torchrun's environment (`WORLD_SIZE` unset) everything is a no-op.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist


@dataclass(frozen=True, slots=True)
class World:
    rank: int
    size: int
    local_rank: int
    device: torch.device

    @property
    def main(self) -> bool:
        return self.rank == 0


def init(device: str = "auto") -> World:
    """Join torchrun's process group when launched by it; pick the device ("auto": this rank's GPU, else CPU)."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device == "auto":
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if size > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return World(rank, size, local_rank, dev)


def shutdown() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def all_reduce_grads(params: Iterable[torch.nn.Parameter]) -> None:
    """Sum every trainable parameter's gradient across processes (one flat buffer per dtype and device). A process
    whose backward never reached a parameter (it had no rows to train on) takes part with zeros."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    groups: dict[tuple[torch.dtype, torch.device], list[torch.Tensor]] = {}
    for p in params:
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            groups.setdefault((p.grad.dtype, p.grad.device), []).append(p.grad)
    for grads in groups.values():
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        offset = 0
        for g in grads:
            g.copy_(flat[offset : offset + g.numel()].view_as(g))
            offset += g.numel()


def all_sum(values: list[float], device: torch.device) -> list[float]:
    """Element-wise sum of a list of numbers across processes (float64)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return list(values)
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.tolist()


def all_max(value: float, device: torch.device) -> float:
    """The largest `value` of any process."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def all_gather_object(obj: Any) -> list[Any]:
    """Every process's `obj`, in rank order."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: object) -> object:
    """Rank 0's `obj` on every process."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]
