"""Training precision: the dtype parameters and AdamW state are kept in, and the dtype matmuls compute in.

Two keys in every training stage's config (SFT, RL):
  `dtype` (compute): "bfloat16" runs every training forward (and so its backward) under
    `torch.autocast(device, bfloat16)`, on CUDA and CPU alike; "float32" runs none; "auto" is bf16 on a GPU that
    has it, fp32 elsewhere (see below).
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
On CPU, bf16 is one key away: `dtype=bfloat16`.
"""

from __future__ import annotations

import contextlib
import warnings
from typing import Any, Literal, Protocol

import torch

ComputeDtype = Literal["auto", "float32", "bfloat16"]
ParamDtype = Literal["float32", "bfloat16"]

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


def compute_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The dtype matmuls run in for the config's `dtype` on `device` ("auto": bf16 on a GPU that has it)."""
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
