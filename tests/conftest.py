"""Fixtures shared by the RL trainer's tests."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Problems whose answer is one digit: a random tiny model hits some by chance, so groups have mixed rewards."""
    path = tmp_path_factory.mktemp("data") / "digits.jsonl"
    with path.open("w") as f:
        for i in range(40):
            f.write(json.dumps({"id": str(i), "problem": str(i % 9 + 1), "answer": str(i % 9 + 1)}) + "\n")
    return path
