"""`rlvr data fetch NAME`: download a registered set from its public source, convert it, write it, check it.

The upstream files of a set (`upstream.SOURCES`) are read at their pinned commits from raw.githubusercontent.com, or,
for a set made of thousands of files (MATH), from the repository's tar.gz archive on codeload.github.com. The whole
download happens in memory before anything is written, so a failed download leaves no file. The converted JSONL is
then checked against the registry (record count and sha256 of the uncompressed content):

- it matches: the file is written atomically at `dest_root / spec.file` (gzipped, with no timestamp, for `.gz`);
- it does not: it is written beside it as `NAME.unverified.jsonl[.gz]`, a name the registry never looks up, and the
  result says "count differs" or "checksum differs". A verified copy already at `spec.file` is left as it was.

A verified copy already at `dest_root / spec.file` is not downloaded again unless `force=True`.

`RLVR_FETCH_BASE_URL` (or `base_url=`) points every download at a mirror serving the same layout:
`BASE/owner/repo/COMMIT/path` for files and `BASE/owner/repo/tar.gz/COMMIT` for archives.

What this module does not know: how a set is converted (`rlvr.data.convert`), or where the registry looks for sets.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import io
import os
import tarfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from pathlib import Path

from rlvr.data.convert import CONVERTERS, convert, to_jsonl
from rlvr.data.registry import DatasetSpec, file_digest
from rlvr.data.upstream import SOURCES, ConvertError, Files, Upstream
from rlvr.io import atomic_write

__all__ = ["FetchError", "FetchResult", "convert", "download", "fetch", "unverified_path", "upstream_files"]

RAW_BASE = "https://raw.githubusercontent.com"
ARCHIVE_BASE = "https://codeload.github.com"
BASE_URL_ENV = "RLVR_FETCH_BASE_URL"
TIMEOUT_S = 60.0  # per request; the largest download (the MATH archive) is a few MB


class FetchError(RuntimeError):
    """A set that cannot be fetched; the message is one sentence naming the set or the URL."""


@dataclass(frozen=True, slots=True)
class FetchResult:
    name: str
    path: Path  # the file written: `dest_root / spec.file` when verified, its `.unverified` sibling otherwise
    records: int  # records in the converted file
    sha256: str  # of the uncompressed content
    expected_records: int
    expected_sha256: str

    @property
    def state(self) -> str:
        if self.records != self.expected_records:
            return f"count differs: {self.records} records, expected {self.expected_records}"
        if self.sha256 != self.expected_sha256:
            return "checksum differs"
        return "verified"

    @property
    def ok(self) -> bool:
        return self.state == "verified"

    def __str__(self) -> str:
        if self.ok:
            return f"{self.name}: verified, {self.records} records -> {self.path}"
        return f"{self.name}: {self.state}; kept unverified as {self.path} (the registry ignores it)"


def fetch(
    spec: DatasetSpec,
    dest_root: Path,
    *,
    base_url: str | None = None,
    timeout: float = TIMEOUT_S,
    force: bool = False,
) -> FetchResult:
    """Download, convert and verify registered set `spec` into `dest_root / spec.file`. Raises FetchError."""
    if spec.source.repo == "local":
        raise FetchError(f"{spec.name} is a local file ({spec.source.path}); there is nothing to fetch")
    if spec.name not in CONVERTERS:
        raise FetchError(
            f"{spec.name} has no automatic converter: get {spec.source.url} and convert it as the data README "
            f"describes ({spec.note or 'see its provenance'}), then put it under $RLVR_DATA_DIR/{spec.file}"
        )
    pinned = {(up.repo, up.commit) for up in SOURCES[spec.name]}
    if (spec.source.repo, spec.source.commit) not in pinned:
        raise FetchError(
            f"{spec.name}: the registry pins {spec.source.repo}@{spec.source.commit[:8]}, but the converter reads "
            f"{', '.join(f'{r}@{c[:8]}' for r, c in sorted(pinned))}; update rlvr/data/upstream.py to match"
        )
    target = Path(dest_root) / spec.file
    if target.exists() and not force:
        sha256, records = file_digest(target)
        if (sha256, records) == (spec.sha256, spec.records):
            return FetchResult(spec.name, target, records, sha256, spec.records, spec.sha256)
    files = upstream_files(spec.name, base_url=base_url, timeout=timeout)
    try:
        data = to_jsonl(convert(spec.name, files))
    except ConvertError as e:
        raise FetchError(f"{spec.name}: the upstream files are not as expected: {e}") from None
    records = sum(1 for line in data.split(b"\n") if line.strip())
    result = FetchResult(
        spec.name, target, records, hashlib.sha256(data).hexdigest(), spec.records, spec.sha256
    )
    if not result.ok:
        result = replace(result, path=unverified_path(result.path))
    _write(result.path, data)
    if result.ok:
        unverified_path(result.path).unlink(missing_ok=True)  # a stale failed attempt
    return result


def unverified_path(path: Path) -> Path:
    """eval/x.jsonl -> eval/x.unverified.jsonl; train/x.jsonl.gz -> train/x.unverified.jsonl.gz."""
    stem, dot, ext = path.name.partition(".")
    return path.with_name(f"{stem}.unverified{dot}{ext}")


def _write(path: Path, data: bytes) -> None:
    with atomic_write(path, "wb") as f:
        # mtime=0 and no file name in the header: the same content gives the same bytes
        f.write(gzip.compress(data, compresslevel=9, mtime=0) if path.name.endswith(".gz") else data)


def upstream_files(name: str, *, base_url: str | None = None, timeout: float = TIMEOUT_S) -> Files:
    """Every upstream file set `name` is converted from: upstream path -> bytes."""
    base = (base_url or os.environ.get(BASE_URL_ENV) or "").rstrip("/")
    files: dict[str, bytes] = {}
    for up in SOURCES[name]:
        if up.archive:
            files.update(_from_archive(up, f"{base or ARCHIVE_BASE}/{up.repo}/tar.gz/{up.commit}", timeout))
        else:
            for path in up.paths:
                files[path] = download(f"{base or RAW_BASE}/{up.repo}/{up.commit}/{path}", timeout)
    return files


def _from_archive(up: Upstream, url: str, timeout: float) -> dict[str, bytes]:
    """The files under `up.paths` in the repository archive at `url` (read in memory, nothing extracted)."""
    folders = tuple(p.rstrip("/") + "/" for p in up.paths)
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(fileobj=io.BytesIO(download(url, timeout)), mode="r:gz") as tar:
            for member in tar:
                path = member.name.split("/", 1)[1] if "/" in member.name else ""  # drop "repo-COMMIT/"
                if member.isfile() and path.startswith(folders):
                    f = tar.extractfile(member)
                    if f is not None:
                        out[path] = f.read()
    except (tarfile.TarError, EOFError, OSError) as e:
        raise FetchError(f"{url} is not a readable tar.gz archive ({e})") from None
    if not out:
        raise FetchError(f"{url} has no files under {', '.join(up.paths)}")
    return out


def download(url: str, timeout: float = TIMEOUT_S) -> bytes:
    """The body at `url`; any failure is a one-sentence FetchError naming the URL."""
    hint = (
        f"no network? fetch where there is one and copy the file into $RLVR_DATA_DIR, or set ${BASE_URL_ENV}"
    )
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body: bytes = response.read()
            return body
    except urllib.error.HTTPError as e:
        raise FetchError(f"could not download {url}: HTTP {e.code} {e.reason}") from None
    except urllib.error.URLError as e:
        reason = e.reason.strerror if isinstance(e.reason, OSError) and e.reason.strerror else e.reason
        raise FetchError(f"could not download {url}: {reason} ({hint})") from None
    except TimeoutError:
        raise FetchError(f"could not download {url}: no answer within {timeout:g} s ({hint})") from None
    except (OSError, http.client.HTTPException) as e:  # a connection reset or cut short mid-body
        reason = getattr(e, "strerror", None) or repr(e)
        raise FetchError(f"could not download {url}: {reason} ({hint})") from None
