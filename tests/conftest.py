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


@pytest.fixture(scope="session")
def smollm2() -> Path:
    """The fetched SmolLM2-135M-Instruct checkpoint (`rlvr models fetch smollm2-135m-instruct`, which `.ci/run`
    does), or a directory named by RLVR_SMOLLM2_DIR; the test is skipped when neither is there (fails under
    RLVR_REQUIRE_REAL=1, as in CI)."""
    import os

    from rlvr.models import registry

    named = os.environ.get("RLVR_SMOLLM2_DIR")
    if named:
        if not (Path(named) / "config.json").exists():
            pytest.skip(f"RLVR_SMOLLM2_DIR={named}: not a checkpoint directory")
        return Path(named)
    path = registry.local_checkpoint(registry.lookup("smollm2-135m-instruct"))
    if path is None:
        missing = "SmolLM2 is not fetched: rlvr models fetch smollm2-135m-instruct"
        if os.environ.get("RLVR_REQUIRE_REAL"):  # CI: the real-model tests must run, not skip
            pytest.fail(missing)
        pytest.skip(missing)
    return path
