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
    # Read bytes, so that a line of bad UTF-8 is an error on that line rather than on the whole file.
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if not raw.strip():
                continue
            try:
                obj = _object(raw, first=line_no == 1)
            except JsonlError as err:
                located = JsonlError(f"{path}:{line_no}: {err}")
                if on_error is None:
                    raise located from None
                on_error(located)
                continue
            yield line_no, obj


def _object(raw: bytes, *, first: bool) -> dict[str, Any]:
    try:
        line = raw.decode("utf-8-sig" if first else "utf-8")
    except UnicodeDecodeError as e:
        raise JsonlError(f"not UTF-8 (byte {e.start + 1})") from None
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as e:
        raise JsonlError(f"invalid JSON: {e.msg} (column {e.colno})") from None
    if not isinstance(obj, dict):
        raise JsonlError(f"expected a JSON object, got {type(obj).__name__}")
    return obj


@contextmanager
def atomic_write(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """Open a temporary file next to `path`; on success it replaces `path`, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(
            tmp, _new_file_mode(path)
        )  # mkstemp makes it 0600; the result should look like any other file
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _new_file_mode(path: Path) -> int:
    """The mode `path` has now, or what the umask gives a new file."""
    try:
        return path.stat().st_mode & 0o7777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask
