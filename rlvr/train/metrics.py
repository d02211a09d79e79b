"""Per-step metrics: one JSON object per line in `RUN/metrics.jsonl` (and TensorBoard scalars when asked).

On resume from step s, records after s are dropped first (they belong to the part of the killed run that the
checkpoint does not hold), so the file reads as one uninterrupted run. Only the main process writes.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from rlvr.io import atomic_write


class MetricsLog:
    def __init__(self, path: Path, *, resume_step: int | None, tensorboard: bool, main: bool) -> None:
        self.path = path
        self.main = main
        self.writer: Any = None
        self.start = time.time()
        if not main:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and path.exists():
            kept = [line for line in path.read_text().splitlines() if _step(line) <= resume_step]
            with atomic_write(path) as f:
                f.write("".join(line + "\n" for line in kept))
        elif path.exists():
            path.unlink()
        self.file = path.open("a", encoding="utf-8")
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ValueError(
                    "tensorboard=true needs the tensorboard package: pip install tensorboard"
                ) from None
            self.writer = SummaryWriter(str(path.parent / "tensorboard"))

    def log(self, step: int, values: dict[str, float]) -> None:
        if not self.main:
            return
        record = {"step": step, **{k: _clean(v) for k, v in values.items()}}
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.writer is not None:
            for key, value in values.items():
                self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        if self.main:
            self.file.close()
            if self.writer is not None:
                self.writer.close()


def _step(line: str) -> int:
    try:
        return int(json.loads(line)["step"])
    except (ValueError, KeyError, TypeError):
        return 1 << 62  # unreadable (a line cut by the kill): dropped


def _clean(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def read_metrics(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
