"""FSDP2 sharding of the trained models across processes (`sharding: fsdp`, RL and SFT): each process keeps 1/W of
every parameter, gradient and AdamW state, so a policy, a critic and a reference that do not fit one device
replicated fit W of them.

Units: every decoder layer is one (gathered for its forward and backward, then freed); the root holds the rest
(embeddings, final norm, LM head, value head). The root must be a module whose forward the trainer calls:
`LogprobModel` for the policy and the reference, `ValueModel` for the critic.

Gradients. FSDP averages them over processes where rlvr's losses are each process's share of a global sum (see
`rlvr.algos.losses`): the loss is multiplied by W (`grad_scale`) before backward, which gives the summed gradient
on any backend (gloo has no pre-scaled sum). Weights for generation and saving are gathered whole (`gathered`):
the fast engine and `save_pretrained` read plain tensors. (Not the hf engine: `generate` would call the layers'
own forwards, and FSDP would take each for a root.)

Every process must run the same forwards (each gathers a unit from all of them): the trainers give every process
the same number of rows, and the RL update keeps idle rows when sharded.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn


def shard(root: nn.Module, layers: Any) -> None:
    """Shard each module of `layers` as its own unit, then `root` (in place: parameters become DTensors, so build
    optimizers after this). One process (no torchrun): nothing to shard, the module stays as it is."""
    import torch.distributed as dist
    from torch.distributed.fsdp import fully_shard

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    for layer in layers:
        fully_shard(layer)
    fully_shard(root)


def is_sharded(module: nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(module, FSDPModule)


def grad_scale(module: nn.Module, world_size: int) -> float:
    """What a loss share is multiplied by before backward so that FSDP's averaged gradient is the global sum."""
    return float(world_size) if is_sharded(module) else 1.0


@contextlib.contextmanager
def gathered(module: nn.Module) -> Iterator[None]:
    """Whole parameters in every unit of `module` for the duration (generation, pushing weights): a no-op when
    it is not sharded. Every process must enter it (the gathers are collective)."""
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in module.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    try:
        yield
    finally:
        for unit in units:
            unit.reshard()


def total_norm(norm: torch.Tensor) -> float:
    """`clip_grad_norm_`'s result as a float (a DTensor over sharded gradients)."""
    from torch.distributed.tensor import DTensor

    return float(norm.full_tensor() if isinstance(norm, DTensor) else norm)


def full_state(module: nn.Module) -> dict[str, Any] | None:
    """The whole weights of a sharded `module` (complete on the main process, on CPU), for `save_pretrained(...,
    state_dict=)`; None when it is not sharded (save it as it is). Every process calls it."""
    if not has_shards(module):
        return None
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(module, options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def optimizer_state(owner: nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, Any]:
    """The optimizer's state to checkpoint: whole on the main process when `owner` (the module whose parameters it
    steps) is sharded; every process calls it."""
    if not has_shards(owner):
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(
        owner, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
    )


def load_optimizer_state(owner: nn.Module, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Restore `optimizer_state`'s result (each process reads the whole state and keeps its shard)."""
    if not has_shards(owner):
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(owner, optimizer, state, options=StateDictOptions(full_state_dict=True))


def has_shards(module: nn.Module) -> bool:
    """Whether any part of `module` is sharded (the policy's LM is not the FSDP root, its layers are units)."""
    return any(is_sharded(m) for m in module.modules())
