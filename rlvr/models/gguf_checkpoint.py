"""A GGUF file as a Hugging Face checkpoint: checked, dequantized once through transformers, and cached.

rlvr trains and samples float weights, so a GGUF (llama.cpp's quantized format) is dequantized to float32 by
transformers (`from_pretrained(..., gguf_file=...)`, which needs the `gguf` package) and saved as a plain checkpoint:
`config.json` without a `quantization_config`, `model.safetensors`, the tokenizer and chat template the GGUF carries.
Dequantizing costs seconds to minutes (on two busy CPU cores, SmolLM2-135M 25-50 s, Gemma 3 270M 1-2.5 min), so
`model=/path/file.gguf` pays it once: the checkpoint is cached under `$RLVR_MODELS_DIR/gguf/<sha256[:16]>`. The
processes of a launch that all meet an uncached GGUF each convert it; the first to finish is kept.

The cache is keyed by the sha256 of the file's bytes, not by its name, size and mtime: a GGUF rewritten in place
(requantized under the same name) must never load stale weights, and the same file under two names converts once.
Hashing costs about 0.2 s per 100 MB; it is remembered per process for an unchanged file (path, size, mtime).

A file that is not a GGUF, a truncated one, or one transformers cannot read is one line naming the file and what is
wrong, and nothing is written. What this module does not know: registered names and where their files come from.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rlvr.models.registry import PROVENANCE, is_complete, models_dir

MAGIC = b"GGUF"  # the first four bytes of every GGUF file
_digests: dict[tuple[str, int, int], str] = {}  # (resolved path, size, mtime_ns) -> sha256, for this process


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes (remembered while its size and mtime stay the same)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _digests:
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                digest.update(block)
        _digests[key] = digest.hexdigest()
    return _digests[key]


def check_magic(path: Path) -> None:
    """One-line ValueError unless `path` starts like a GGUF file (cheap: four bytes)."""
    with open(path, "rb") as f:
        head = f.read(4)
    if head != MAGIC:
        raise ValueError(f"{path}: not a GGUF file (it starts with {head!r}; a GGUF starts with {MAGIC!r})")


def diagnose(path: Path, error: BaseException) -> ValueError:
    """Why transformers could not read GGUF `path`: the file itself (truncated, corrupt), or what it holds.

    Run only after a failure: parsing a GGUF's metadata in Python costs seconds (Gemma's 262k-token vocabulary
    about 25 s), which the happy path leaves to transformers' own parse."""
    import transformers
    from gguf import GGUFReader

    try:
        reader = GGUFReader(path)  # the header, the metadata and every tensor's extent
    except Exception as e:  # a short file fails in numpy (reshape, memmap) or struct, wherever it is cut off
        size = path.stat().st_size
        return ValueError(f"{path}: a corrupt or truncated GGUF ({size} bytes): {_first_line(e)}")
    field = reader.fields.get("general.architecture")
    architecture = str(field.contents()) if field is not None else "not recorded"
    return ValueError(
        f"{path}: transformers {transformers.__version__} cannot dequantize this GGUF (architecture "
        f"{architecture}): {_first_line(error)}"
    )


def cached_checkpoint(path: Path) -> Path:
    """The float checkpoint of GGUF `path`, dequantized into the cache on first use."""
    check_magic(path)
    sha256 = file_sha256(path)
    target = models_dir() / "gguf" / sha256[:16]
    if is_complete(target, sha256):
        return target
    provenance = {"source": str(path.resolve()), "sha256": sha256}
    return convert(path, target, provenance, replace=target.exists())  # there but incomplete: replace it


def convert(gguf: Path, target: Path, provenance: dict[str, Any], *, replace: bool) -> Path:
    """Dequantize `gguf` into checkpoint directory `target`, with `provenance` written beside it; a file
    transformers cannot read is a one-line ValueError (see `diagnose`), with nothing written.

    Atomic. `replace=False` is first-wins: when another process (another rank of a launch) wrote `target`
    meanwhile, its copy is kept and ours dropped.
    """
    import torch
    import transformers

    from rlvr.models.checkpoint import forget_load_options, quiet_loading, save_checkpoint

    # transformers reads gguf_file inside a directory and would also read any tokenizer_config.json it finds
    # there: give it a directory holding only a link to the file.
    alone = Path(tempfile.mkdtemp(prefix="rlvr-gguf-"))
    try:
        (alone / "model.gguf").symlink_to(gguf.resolve())
        with quiet_loading(), _quiet_dequantization():
            try:
                model = transformers.AutoModelForCausalLM.from_pretrained(
                    alone, gguf_file="model.gguf", dtype=torch.float32, local_files_only=True
                )
                tokenizer = transformers.AutoTokenizer.from_pretrained(
                    alone, gguf_file="model.gguf", local_files_only=True
                )
            except Exception as e:  # transformers raises ValueError, KeyError, NotImplementedError, ... here
                raise diagnose(gguf, e) from None
    finally:
        shutil.rmtree(alone, ignore_errors=True)
    # The weights are plain float32 tensors now; only the GGUF marker says otherwise, and it makes save_pretrained
    # refuse ("not serializable") and would write a quantization_config that no loader could honour.
    quantizer: Any = getattr(model, "hf_quantizer", None)
    if quantizer is not None:
        quantizer.remove_quantization_config(model)
    forget_load_options(tokenizer)
    record = {
        **provenance,
        "rlvr_version": _rlvr_version(),
        "transformers_version": transformers.__version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    files = {PROVENANCE: json.dumps(record, indent=2) + "\n"}
    return save_checkpoint(model, tokenizer, target, files=files, replace=replace)


@contextmanager
def _quiet_dequantization() -> Iterator[None]:
    """No "Converting and de-quantizing GGUF tensors" bar: transformers draws it with plain tqdm, which its
    progress-bar switch does not reach."""
    import functools

    from transformers import modeling_gguf_pytorch_utils

    module: Any = modeling_gguf_pytorch_utils

    original = getattr(module, "tqdm", None)
    if original is None:
        yield
        return
    module.tqdm = functools.partial(original, disable=True)
    try:
        yield
    finally:
        module.tqdm = original


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _rlvr_version() -> str:
    from rlvr import __version__

    return __version__
