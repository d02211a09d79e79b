"""Peak memory per phase: a phase's peak sees what the phase allocated, and the next phase starts afresh."""

from __future__ import annotations

import sys

import pytest
import torch

from rlvr.train.memory import phase_peak


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
