"""Files: JSONL read with errors that name the file and line, and writes that are never half-done.

Every file rlvr writes goes through `atomic_write`: the data lands in a temporary file beside the target and is
renamed over it only when complete, so a crash or a kill leaves either the old file or the new one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


class JsonlError(ValueError):
    """A malformed JSONL line; the message starts with `path:line:`."""


def read_jsonl(
    path: str | Path, on_error: Callable[[JsonlError], None] | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line of `path`.

    A line that is not a JSON object raises JsonlError — or, when `on_error` is given, is passed to it and skipped.
    """
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                if not isinstance(obj, dict):
                    raise JsonlError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
            except json.JSONDecodeError as e:
                err = JsonlError(f"{path}:{line_no}: invalid JSON: {e.msg} (column {e.colno})")
                if on_error is None:
                    raise err from e
                on_error(err)
                continue
            except JsonlError as err:
                if on_error is None:
                    raise
                on_error(err)
                continue
            yield line_no, obj


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
