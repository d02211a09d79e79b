"""A Hugging Face hub id (`org/name`) as a local checkpoint directory, the way transformers gets one.

`snapshot` downloads the files a checkpoint needs into the hub cache (or, offline, finds them there) and returns
the snapshot directory, so every later step reads a local directory like any other. It departs from transformers
in two ways: it asks the hub with a short timeout (`ETAG_TIMEOUT_S`) rather than 10 s, and every failure is one
line (transformers' OSError runs to a paragraph). `HF_HUB_OFFLINE=1` is respected: only the cache is read.
Only safetensors weights are fetched, never `*.bin` or `*.gguf` copies of the same weights.
"""

from __future__ import annotations

import os
from pathlib import Path

ETAG_TIMEOUT_S = 5.0  # per request to the hub; an unreachable hub fails within this
PATTERNS = [
    "*.json",
    "*.safetensors",
    "*.jinja",
    "*.model",
    "*.txt",
    "*.tiktoken",
]  # config, weights, tokenizer


def offline() -> bool:
    """HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a true value."""
    return any(
        os.environ.get(key, "").strip().upper() in ("1", "ON", "YES", "TRUE")
        for key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def snapshot(repo_id: str, *, known: list[str]) -> Path:
    """The local snapshot of hub model `repo_id`; one-line FileNotFoundError when there is none to be had."""
    from huggingface_hub import snapshot_download

    where = f"{repo_id}: no such local path, and not a registered model ({', '.join(known)})"
    is_offline = offline()
    try:
        path = snapshot_download(
            repo_id,
            allow_patterns=PATTERNS,
            etag_timeout=ETAG_TIMEOUT_S,
            local_files_only=is_offline,
        )
    # huggingface_hub's errors share no base class with the network ones it lets through
    except Exception as e:
        if is_offline:
            raise FileNotFoundError(
                f"{where}; as a hub id it is not in the hub cache, and HF_HUB_OFFLINE is set"
            ) from None
        reason = type(e).__name__
        if reason in ("RepositoryNotFoundError", "GatedRepoError", "RevisionNotFoundError"):
            raise FileNotFoundError(
                f"{where}; the hub has no model {repo_id} that we may read ({reason})"
            ) from None
        raise FileNotFoundError(
            f"{where}; as a hub id it needs the hub, which could not be reached ({reason}), or its cache"
        ) from None
    return Path(path)
