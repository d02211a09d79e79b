"""Training precision: the dtype parameters and AdamW state are kept in, and the dtype matmuls compute in.

Two keys in every training stage's config (SFT, RL):
  `dtype` (compute): "bfloat16" runs every training forward (and so its backward) under
    `torch.autocast(device, bfloat16)`, on CUDA and CPU alike; "float32" runs none; "auto" is bf16 on a GPU that
    has it, fp32 elsewhere (see below); "bf16-if-native" is bf16 where the hardware multiplies bf16 natively (a
    GPU that has it, a CPU with AVX512-BF16 or AMX), fp32 elsewhere: what a real-model recipe sets, resolved
    once when the run starts (`resolved`) and logged.
  `param_dtype` (storage): "float32" (default): fp32 master weights, fp32 gradients and AdamW moments, whatever the
    compute dtype. "bfloat16": parameters, gradients and AdamW state in bf16, half the memory, at a price it warns
    of: bf16 keeps 8 significant bits, so an update smaller than half a bf16 step (2^-9 to 2^-8 of the weight) is
    rounded away. At lr 1e-6 an AdamW step moves a weight by ~1e-6: lost for any weight over ~5e-4. One step at
    lr 5e-6 on the tiny model changes 98.8% of the weights with fp32 parameters, under fp32 or bf16 compute alike
    (the rest have no gradient), and 7.9% of them in bf16 (lr 1e-6: 2.3%) (tests/test_precision.py).

Under autocast, matmuls (linear, matmul, SDPA) run in bf16 while parameters stay fp32 (autocast casts them per
forward), and the rest stays fp32: `rlvr.models.logprobs` upcasts each chunk of logits before its log-softmax,
transformers upcasts inside RMSNorm and the rotary embeddings, gradients arrive in the parameters' dtype. The
logits themselves are a bf16 matmul's output. On SmolLM2-135M, per-token log-probs under bf16 compute differ from
fp32 ones by 0.026 on average (0.46 at most; an fp32 LM head alone brings the mean to 0.017: the backbone's
rounding dominates), and the gradient's cosine similarity to the fp32 one is 0.9996 (`bench/precision.py`). The
stored old log-probs, the reference model's log-probs and the critic's values are computed under the same
autocast and over the same micro-batches as the update's forwards (`rlvr.train.batches`): the PPO ratio is exactly
1 until the first optimizer step, and the reference (kept in the policy's parameter dtype) starts at KL 0.

Why "auto" is fp32 on CPU. Measured on the 2-core development CPU (avx512_bf16), one forward + backward of 2 x 256
tokens, `python bench/precision.py` (one thread; the cores are shared with other jobs: ±30% noise): SmolLM2-135M
takes 14-16 s in fp32 and 9.6-10.5 s under bf16 autocast, 1.5x faster (paired runs 1.24-1.80x; a bare matmul of
its shape: 2.1x; two threads on the busy cores: 1.13x, 0.67-1.58x). The tiny hidden-64 model of the tests, the demo
and the CPU recipes is 1.2-1.4x slower in bf16: the casts cost more than its matmuls save. And a default that
depended on whether the CPU has bf16 instructions would give one recipe different numbers on different machines.
On CPU, bf16 is one key away: `dtype=bfloat16`, or `dtype=bf16-if-native` where it may run on either kind of CPU.
A CPU without bf16 instructions emulates them, and there bf16 is the slow choice: on a 2-core Intel Xeon with
AVX-512 but no AVX512-BF16, a 2048² matmul runs at 154 GFLOP/s in fp32 and 34 in bf16 (4.5x slower), and the
SmolLM2 GRPO step went from ~27 s (bf16, on the AMD CPU) to ~195 s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import warnings
from pathlib import Path
from typing import Any, Literal, Protocol, TypeVar

import torch

ComputeDtype = Literal["auto", "float32", "bfloat16", "bf16-if-native"]
ParamDtype = Literal["float32", "bfloat16"]
NATIVE = "bf16-if-native"
BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})  # /proc/cpuinfo flags of CPUs that multiply bf16 natively

log = logging.getLogger(__name__)

LR_WARNING = (
    "param_dtype=bfloat16: parameters and AdamW state are kept in bf16 (8 significant bits), so an update smaller "
    "than ~2^-9 of a weight is rounded away; at lr ~1e-6 most weights do not change at all. Use param_dtype=float32 "
    "(fp32 master weights; dtype=bfloat16 still computes in bf16) unless memory forces this."
)


class PrecisionConfig(Protocol):
    """What a stage's config says about precision."""

    @property
    def dtype(self) -> str: ...
    @property
    def param_dtype(self) -> str: ...


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (Linux; empty where /proc/cpuinfo is not there)."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return frozenset()
    flags = next((line.split(":", 1)[1] for line in lines if line.startswith("flags")), "")
    return frozenset(flags.split())


def native_bf16(device: torch.device) -> bool:
    """Whether `device` multiplies bf16 in hardware: a CUDA GPU that supports it, a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and bool(BF16_FLAGS & cpu_flags())


def resolve(dtype: str, device: torch.device) -> str:
    """ "bf16-if-native" as the dtype it is on `device`; any other value as it is."""
    if dtype != NATIVE:
        return dtype
    return "bfloat16" if native_bf16(device) else "float32"


T = TypeVar("T")


def resolved(config: T, device: torch.device) -> T:
    """`config` with "bf16-if-native" in its `dtype` (and `rollout_dtype`, when it has one) resolved for `device`,
    logged once: a run records and uses the dtype it ran in."""
    fields = [name for name in ("dtype", "rollout_dtype") if getattr(config, name, None) == NATIVE]
    if not fields:
        return config
    changes = {name: resolve(NATIVE, device) for name in fields}
    why = "has" if native_bf16(device) else "has no"
    log.warning("%s: %s (%s %s native bf16)", ", ".join(f"{k}={NATIVE}" for k in changes),
                next(iter(changes.values())), device.type.upper(), why)  # fmt: skip
    return dataclasses.replace(config, **changes)  # type: ignore[type-var]


def compute_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The dtype matmuls run in for the config's `dtype` on `device` ("auto": bf16 on a GPU that has it)."""
    dtype = resolve(dtype, device)
    if dtype == "bfloat16":
        return torch.bfloat16
    if dtype == "auto" and device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def autocast(dtype: str, device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """The context every training forward (and so its backward) runs in: bf16 autocast on any device, or none."""
    if compute_dtype(dtype, device) == torch.bfloat16:
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def param_dtype(config: PrecisionConfig) -> torch.dtype:
    """The dtype to keep parameters (so gradients and AdamW state) in; warns when it is bf16 (see LR_WARNING)."""
    if config.param_dtype not in ("float32", "bfloat16"):
        raise ValueError(f"param_dtype: {config.param_dtype!r} is not one of float32, bfloat16")
    if config.param_dtype == "float32":
        return torch.float32
    if config.dtype == "float32":
        raise ValueError("param_dtype=bfloat16 computes in bf16: it cannot go with dtype=float32")
    warnings.warn(LR_WARNING, stacklevel=2)
    return torch.bfloat16
