"""Peak memory per phase: a phase's peak sees what the phase allocated, and the next phase starts afresh."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from rlvr.train.memory import phase_peak, release_freed


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the resident high-water mark is Linux's")
def test_a_phase_peak_sees_its_allocation_and_the_next_starts_afresh() -> None:
    cpu = torch.device("cpu")
    with phase_peak(cpu) as big:
        x = torch.ones(64 * 2**20)  # 256 MiB, written
        del x
    with phase_peak(cpu) as small:
        pass
    assert big.gb - small.gb > 0.2
    assert small.gb > 0.01  # the interpreter itself


def resident_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_heap_memory_goes_back_to_the_system() -> None:
    """Many small tensors (below glibc's mmap threshold, so on the heap) freed out of order: glibc keeps their
    pages until `release_freed` trims them."""
    keep, drop = [], []
    for i in range(
        6000
    ):  # 6000 x 64 KiB = 375 MiB, every other one kept: the heap cannot shrink from the top
        (keep if i % 2 else drop).append(torch.ones(16 * 1024))
    del drop
    before = resident_bytes()
    assert release_freed()
    after = resident_bytes()
    assert before - after > 100 * 2**20
    del keep
