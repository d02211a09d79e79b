"""Peak memory per phase of an RL step: the process's resident set on a CPU (Linux's high-water mark VmHWM,
reset between phases through /proc/self/clear_refs), the allocator's peak on a GPU.

    with phase_peak(device) as peak:
        generate()
    metrics["mem/generate_gb"] = peak.gb
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass
class Peak:
    gb: float = 0.0  # the phase's peak, GiB (0 where the platform reports none)


def reset_peak(device: torch.device) -> None:
    """Start a new peak: the GPU allocator's, or the process's resident high-water mark (Linux ≥ 4.0; elsewhere the
    peak stays the process's lifetime one)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    with contextlib.suppress(OSError):
        CLEAR_REFS.write_text("5")


def peak_bytes(device: torch.device) -> int:
    """The peak since `reset_peak`: bytes allocated on the GPU, or the resident set's high-water mark."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024  # kB
    except OSError:
        pass
    return 0


def release_freed() -> bool:
    """Hand memory the process has freed back to the system (glibc's malloc_trim): glibc keeps freed heap pages,
    so without it the resident set after an update stays near the update's peak through the next step's rollout
    (SmolLM2-135M GRPO, step 3: 5.2 GB in the rollout, 3.5 GB with it). False where there is no glibc."""
    trim = malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


@functools.cache
def malloc_trim() -> Any:
    """glibc's malloc_trim, looked up once (find_library may run ldconfig), or None."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def phase_peak(device: torch.device) -> Iterator[Peak]:
    """The peak memory of the block, in GiB, in the yielded `Peak` once the block ends."""
    peak = Peak()
    reset_peak(device)
    try:
        yield peak
    finally:
        peak.gb = peak_bytes(device) / 2**30
