"""Load and save Hugging Face checkpoints (config + safetensors + tokenizer).

What to load is any model spec `rlvr.models.registry.resolve` knows (a checkpoint directory, a .gguf file, a
registered name, a hub id); it becomes a local directory first, and a directory without a config or weights is an
error that says what is missing. Saving writes the standard layout (`config.json`, `model.safetensors`, tokenizer
files), so transformers and vLLM load the result, and writes it atomically: into a temporary directory beside the
target, renamed over it when complete. transformers' own progress bars stay off while rlvr loads or saves.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DTYPES = ("auto", "float32", "bfloat16", "float16")
# What transformers records in a tokenizer about how it was loaded (this machine's), and writes back on save.
LOAD_OPTIONS = ("local_files_only", "is_local")


def _check_dir(path: Path) -> None:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such checkpoint directory")
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path}: missing config.json — not a Hugging Face checkpoint directory")
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    if not weights:
        raise FileNotFoundError(
            f"{path}: no weights (*.safetensors or pytorch_model*.bin) next to config.json"
        )
    _check_model_type(path)
    index = path / "model.safetensors.index.json"
    if index.exists():
        shards = set(json.loads(index.read_text())["weight_map"].values())
        missing = sorted(s for s in shards if not (path / s).exists())
        if missing:
            raise FileNotFoundError(
                f"{path}: weight shard(s) listed in {index.name} are missing: {', '.join(missing)}"
            )


def _check_model_type(path: Path) -> None:
    """config.json names a causal LM this transformers can build: the question every engine and the trainer need
    answered yes (transformers' own error for an unknown type is a paragraph on upgrading)."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        model_type = json.loads((path / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as e:
        raise ValueError(f"{path / 'config.json'}: unreadable ({e})") from None
    if model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ValueError(
            f"{path / 'config.json'}: model_type {model_type!r} is not a causal LM that transformers "
            f"{transformers.__version__} knows, so no rlvr engine can run it"
        )


def load_model(
    path: str | Path, *, dtype: str = "auto", device: str = "cpu", gradient_checkpointing: bool = False
) -> Any:
    """A causal LM from any model spec (see `resolve`). dtype "auto" keeps the checkpoint's; bfloat16 only where
    supported."""
    import torch
    from transformers import AutoModelForCausalLM

    from rlvr.models.registry import resolve

    path = resolve(path)
    _check_dir(path)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    with quiet_loading():
        model = AutoModelForCausalLM.from_pretrained(
            path, dtype="auto" if dtype == "auto" else getattr(torch, dtype), local_files_only=True
        )
    model = model.to(device)  # type: ignore[arg-type]
    if gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def enable_gradient_checkpointing(model: Any) -> None:
    """Recompute each layer's activations in backward (non-reentrant checkpointing)."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5 renamed it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    model.config.use_cache = False


def load_tokenizer(path: str | Path, *, require_chat_template: bool = False) -> Any:
    """The tokenizer of any model spec (see `resolve`)."""
    from transformers import AutoTokenizer

    from rlvr.models.registry import resolve

    path = resolve(path)
    if (path / "config.json").exists():
        _check_model_type(path)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if _generic_tokenizer(path) and type(tokenizer).__name__ != "TokenizersBackend":
        # transformers 5 picks the tokenizer class from config.json's model_type (Qwen2Tokenizer for "qwen2"),
        # which rebuilds the pipeline and drops the tiny tokenizer's whitespace tokens: read tokenizer.json as is.
        from transformers import PreTrainedTokenizerFast

        tokenizer = PreTrainedTokenizerFast.from_pretrained(path, local_files_only=True)
    if require_chat_template and not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"{path}: the tokenizer has no chat template, and this run needs one (use template r1_zero)"
        )
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token  # Llama ships without one; padding is masked anyway
    forget_load_options(tokenizer)
    return tokenizer


def forget_load_options(tokenizer: Any) -> None:
    """Drop what transformers noted about how `tokenizer` was loaded (`local_files_only`, `is_local`): it writes
    them into every later save's tokenizer_config.json, where they describe this machine, not the checkpoint."""
    init_kwargs = getattr(tokenizer, "init_kwargs", None)
    if isinstance(init_kwargs, dict):
        for key in LOAD_OPTIONS:
            init_kwargs.pop(key, None)


@contextmanager
def quiet_loading() -> Iterator[None]:
    """transformers' progress bars ("Loading weights", "Writing model shards") off while rlvr loads or saves:
    rlvr prints its own progress, and a bar per load cuts through it. The previous setting comes back after."""
    from transformers.utils import logging

    was_enabled = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if was_enabled:
            logging.enable_progress_bar()


def _generic_tokenizer(path: Path) -> bool:
    """Saved from a tokenizer defined wholly by its tokenizer.json (rlvr's tiny tokenizer), not a named class."""
    import json

    config = path / "tokenizer_config.json"
    if not config.exists():
        return False
    return json.loads(config.read_text()).get("tokenizer_class") in (
        "TokenizersBackend",
        "PreTrainedTokenizerFast",
    )


def save_checkpoint(
    model: Any,
    tokenizer: Any,
    path: str | Path,
    *,
    state_dict: dict[str, Any] | None = None,
    files: Mapping[str, str] | None = None,
    replace: bool = True,
) -> Path:
    """Write model (safetensors) and tokenizer to `path`, atomically; an existing checkpoint is replaced whole.
    `state_dict`: the weights to write instead of the model's own (a sharded model's gathered ones).
    `files`: small text files to write beside them (name -> content), e.g. a provenance record.
    `replace=False`: when `path` exists by the time the new checkpoint is complete (another process wrote it), keep
    that one and drop the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"))
    try:
        with quiet_loading():  # "Writing model shards" for a one-shard save is noise in a training log
            model.save_pretrained(tmp, state_dict=state_dict, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
        for name, content in (files or {}).items():
            (tmp / name).write_text(content, encoding="utf-8")
        if not replace:
            _rename_unless_there(tmp, path)
        elif path.exists():
            old = path.with_name(f".{path.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def _rename_unless_there(tmp: Path, path: Path) -> None:
    """Rename `tmp` to `path`; when `path` is already there (or appears first), drop `tmp` instead."""
    try:
        os.rename(tmp, path)  # onto an existing non-empty directory this fails, whichever process came first
    except OSError:
        if not path.is_dir():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
