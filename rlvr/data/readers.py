"""Reading a user's problem file into `Problem`s, and writing problems back out.

Formats, chosen from the name unless `format=` says otherwise:

- ``jsonl`` (``.jsonl``, ``.ndjson``): one JSON object per line.
- ``json`` (``.json``): a list of objects; an object of objects keyed by id (the key is the id unless the record
  has one); or a wrapper object holding exactly one list of objects beside other, non-object values
  (``{"version": 2, "data": [...]}``). A ``.json`` file that is really JSON Lines (what `datasets`'s
  ``to_json`` writes) is read as JSON Lines.
- ``csv`` (``.csv``): a header row, then one record per row; every value is text, an empty cell counts as absent.
- ``parquet`` (``.parquet``): through pyarrow, an optional dependency imported only here.
- ``datasets``: a directory written by `datasets`'s ``save_to_disk`` (``state.json`` and ``*.arrow`` shards). Read
  with pyarrow's IPC stream reader in the order ``state.json`` lists the shards, so `datasets` itself is not needed;
  cache files that ``.map()`` leaves in the directory are not read. A ``DatasetDict`` directory is refused with
  the list of its splits.

JSON Lines, JSON and CSV may be gzip-compressed (recognised by content, so ``x.jsonl.gz`` just works).
In columnar files (parquet, datasets) every record has every column, so a null there means the field is absent.

Every error is a `ReadError` whose message starts with where it happened: ``path:line`` (1-based) for JSON Lines,
CSV and a malformed JSON file, ``path: record N`` (0-based, as in ``rows[N]``) for JSON, parquet and datasets.
A record without an id gets that same number as its id. This module knows files and field names, not what the
pipeline does with the problems.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rlvr.data.schema import KNOWN, Problem, SchemaError, to_problem
from rlvr.io import JsonlError, atomic_write, read_jsonl

FORMATS = ("jsonl", "json", "csv", "parquet", "datasets")
_SUFFIXES = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
_SUPPORTED = ".jsonl[.gz], .json[.gz], .csv[.gz], .parquet, or a directory from datasets' save_to_disk"

Record = tuple[str, Any, dict[str, Any]]  # (where for messages, the default id, the source record)


class ReadError(ValueError):
    """Any problem reading a dataset file; the message names the file, the line or record, and the field."""


def read_problems(
    path: str | Path,
    *,
    fields: Mapping[str, str] | None = None,
    format: str | None = None,
    require_answer: bool = True,
    source: str | None = None,
) -> list[Problem]:
    """Every record of `path` as a Problem, in file order.

    `fields` maps a schema field to the source's name for it: ``{"problem": "question", "answer":
    "final_answer.0"}``. A name is a key, or a dotted path of keys and list indices (``meta.answers.-1``); a key
    that itself contains a dot is matched whole first. Unmapped schema fields come from same-named source fields;
    a renamed source field is consumed, every other one lands in `Problem.extra`.
    With `require_answer=False` a record whose answer is missing or empty (a mapped answer path that does not
    resolve included) gets ``answer=""``, for a later step to fill from the solution. `source` labels records
    that carry no `source` of their own. Ids must be unique within the file.
    """
    path = Path(path)
    fields = _check_fields(fields)
    problems: list[Problem] = []
    first_seen: dict[str, str] = {}
    for where, number, record in _records(path, format):
        problem = _problem(record, where, number, fields, require_answer)
        if source is not None and problem.source is None:
            problem.source = source
        if problem.id in first_seen:
            raise ReadError(f"{where}: duplicate id {problem.id!r} (first at {first_seen[problem.id]})")
        first_seen[problem.id] = _place(where, path)
        problems.append(problem)
    if not problems:
        raise ReadError(f"{path}: no records")
    return problems


def write_problems(problems: Iterable[Problem], path: str | Path) -> None:
    """Write `Problem.to_dict()` records to ``.jsonl``, ``.jsonl.gz`` or ``.parquet``, all or nothing.

    The file appears only once complete; on any error an existing file at `path` is left as it was.
    A record that cannot be encoded raises ValueError naming its id.
    """
    path = Path(path)
    name = path.name.lower()
    if name.endswith(".parquet"):
        _write_parquet([p.to_dict() for p in problems], path)
    elif name.endswith((".jsonl", ".jsonl.gz")):
        with atomic_write(path, "wb") as f:
            if name.endswith(".gz"):
                # no name or time in the header: the same problems give the same bytes
                with gzip.GzipFile(filename="", fileobj=f, mode="wb", mtime=0) as gz:
                    _write_jsonl(problems, gz.write, path)
            else:
                _write_jsonl(problems, f.write, path)
    else:
        raise ValueError(f"{path}: cannot write this file type; use .jsonl, .jsonl.gz or .parquet")


def _place(where: str, path: Path) -> str:
    """`where` without the file name ("line 3", "record 'k'"), for a message that already names the file."""
    rest = where[len(str(path)) :]
    return f"line {rest[1:]}" if rest[1:].isdigit() else rest.lstrip(": ")


# --- turning a source record into a Problem ---------------------------------------------------------------------


def _check_fields(fields: Mapping[str, str] | None) -> dict[str, str]:
    fields = dict(fields or {})
    for target, name in fields.items():
        if target not in KNOWN:
            raise ReadError(f"fields: {target!r} is not a schema field (schema fields: {', '.join(KNOWN)})")
        if not isinstance(name, str) or not name:
            raise ReadError(
                f"fields: the source name for {target!r} must be a non-empty string, got {name!r}"
            )
    return fields


def _problem(
    record: dict[str, Any], where: str, number: Any, fields: dict[str, str], require_answer: bool
) -> Problem:
    consumed = {name for name in fields.values() if name in record}  # renamed whole fields leave `extra`
    obj = {k: v for k, v in record.items() if k not in consumed and k not in KNOWN}
    for key in KNOWN:
        if key in fields:
            try:
                obj[key] = _lookup(record, fields[key])
            except LookupError as e:
                if key == "answer" and not require_answer:
                    continue
                raise ReadError(f"{where}: missing field {fields[key]!r} (mapped to {key!r}): {e}") from None
        elif key in record and key not in consumed:  # not when renamed: GSM8K's "answer" is a solution
            obj[key] = record[key]
    if obj.get("id") is None and "id" not in fields:
        obj["id"] = number
    try:
        return to_problem(obj, where, require_answer=require_answer)
    except SchemaError as e:
        raise ReadError(_name_source(str(e), fields)) from None


def _lookup(record: dict[str, Any], name: str) -> Any:
    """The value at `name`: the whole key if present, else a dotted path of keys and integer list indices."""
    if name in record:
        return record[name]
    value: Any = record
    for part in name.split("."):
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and re.fullmatch(r"-?\d+", part):
            if not -len(value) <= int(part) < len(value):
                raise LookupError(f"index {part} is out of range for a list of {len(value)}")
            value = value[int(part)]
        elif value is None:
            return None  # a null on the way: the field is absent, as a null at the end would be
        else:
            raise LookupError(f"no {part!r} in {type(value).__name__}")
    return value


def _name_source(message: str, fields: dict[str, str]) -> str:
    """Add the source's name to a schema message about a mapped field, so the user can find it in the file."""
    found = re.search(r"field '(\w+)'", message)
    if found and found.group(1) in fields:
        return f"{message} (source field {fields[found.group(1)]!r})"
    return message


# --- records from each format: (where, default id, record) -----------------------------------------------------


def _records(path: Path, format: str | None) -> Iterator[Record]:
    if not path.exists():
        raise ReadError(f"{path}: no such file or directory")
    format = format or _detect(path)
    if format not in FORMATS:
        raise ReadError(f"{path}: unknown format {format!r}; formats: {', '.join(FORMATS)}")
    if format == "datasets":
        if not path.is_dir():
            raise ReadError(f"{path}: the datasets format is a directory written by save_to_disk, not a file")
        return _datasets_records(path)
    if path.is_dir():
        raise ReadError(f"{path}: is a directory, not a {format} file")
    return {"jsonl": _jsonl_records, "json": _json_records, "csv": _csv_records, "parquet": _parquet_records}[
        format
    ](path)


def _detect(path: Path) -> str:
    if path.is_dir():
        if (path / "state.json").is_file() or any(path.glob("*.arrow")):
            return "datasets"
        if (path / "dataset_dict.json").is_file():
            return "datasets"  # refused with the list of splits
        raise ReadError(f"{path}: a directory, but not one written by datasets' save_to_disk (no state.json)")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes.pop()
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise ReadError(f"{path}: unknown file type; supported: {_SUPPORTED} (or pass format=)")


def _gzipped(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"\x1f\x8b"


def _open_bytes(path: Path) -> gzip.GzipFile | io.BufferedReader:
    """The file's bytes, gunzipped when it starts with the gzip magic number."""
    return gzip.open(path, "rb") if _gzipped(path) else open(path, "rb")


def _jsonl_records(path: Path) -> Iterator[Record]:
    if not _gzipped(path):
        try:
            for line_no, obj in read_jsonl(path):
                yield f"{path}:{line_no}", line_no, obj
        except JsonlError as e:
            raise ReadError(str(e)) from None
        return
    with gzip.open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):  # read_jsonl takes a path; the same rules for gzip here
            if not raw.strip():
                continue
            try:
                obj = json.loads(raw.decode("utf-8-sig" if line_no == 1 else "utf-8"))
            except UnicodeDecodeError as e:
                raise ReadError(f"{path}:{line_no}: not UTF-8 (byte {e.start + 1})") from None
            except json.JSONDecodeError as e:
                raise ReadError(f"{path}:{line_no}: invalid JSON: {e.msg} (column {e.colno})") from None
            if not isinstance(obj, dict):
                raise ReadError(f"{path}:{line_no}: expected a JSON object, got {type(obj).__name__}")
            yield f"{path}:{line_no}", line_no, obj


def _json_records(path: Path) -> Iterator[Record]:
    with _open_bytes(path) as f:
        raw = f.read()
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except UnicodeDecodeError as e:
        raise ReadError(f"{path}: not UTF-8 (byte {e.start + 1})") from None
    except json.JSONDecodeError as e:
        if e.msg == "Extra data" and e.lineno > 1:  # one value per line: JSON Lines under a .json name
            yield from _jsonl_records(path)
            return
        raise ReadError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from None
    if isinstance(data, dict) and all(isinstance(v, dict) for v in data.values()):
        for key, obj in data.items():  # keyed by id
            yield f"{path}: record {key!r}", key, obj
        return
    if isinstance(data, dict):  # a wrapper: the one list of objects in it holds the records
        lists = [k for k, v in data.items() if isinstance(v, list) and all(isinstance(x, dict) for x in v)]
        if len(lists) != 1:
            raise ReadError(
                f"{path}: expected a list of objects, an object of objects keyed by id, or an object "
                f'holding one list of objects (like {{"data": [...]}}); got an object with keys '
                f"{', '.join(map(repr, list(data)[:8]))}"
            )
        data = data[lists[0]]
    if not isinstance(data, list):
        raise ReadError(f"{path}: expected a list of objects, got {type(data).__name__}")
    for i, obj in enumerate(data):
        if not isinstance(obj, dict):
            raise ReadError(f"{path}: record {i}: expected a JSON object, got {type(obj).__name__}")
        yield f"{path}: record {i}", i, obj


def _csv_records(path: Path) -> Iterator[Record]:
    with _open_bytes(path) as f:
        lines = _decoded_lines(f, path)
        rows = csv.reader(lines)
        header = next(rows, None)
        if header is None:
            return
        if len(set(header)) != len(header):
            duplicate = next(h for h in header if header.count(h) > 1)
            raise ReadError(f"{path}:1: duplicate column {duplicate!r}")
        start = rows.line_num + 1
        for row in rows:
            if len(row) > len(header):
                raise ReadError(f"{path}:{start}: {len(row)} cells, but the header has {len(header)} columns")
            if any(row):
                record = {name: cell for name, cell in zip(header, row, strict=False) if cell != ""}
                yield f"{path}:{start}", start, record
            start = rows.line_num + 1


def _decoded_lines(f: Iterable[bytes], path: Path) -> Iterator[str]:
    """Text lines with their newlines kept (what csv wants), each decoding error named by its line."""
    for line_no, raw in enumerate(f, start=1):
        try:
            yield raw.decode("utf-8-sig" if line_no == 1 else "utf-8")
        except UnicodeDecodeError as e:
            raise ReadError(f"{path}:{line_no}: not UTF-8 (byte {e.start + 1})") from None


def _parquet_records(path: Path) -> Iterator[Record]:
    pa = _pyarrow(path)
    import pyarrow.parquet as pq

    try:
        batches = pq.ParquetFile(path).iter_batches()
        yield from _table_records(path, batches)
    except (pa.ArrowException, OSError) as e:
        raise ReadError(f"{path}: not a readable parquet file: {e}") from None


def _datasets_records(path: Path) -> Iterator[Record]:
    if (path / "dataset_dict.json").is_file():
        splits = json.loads((path / "dataset_dict.json").read_text(encoding="utf-8")).get("splits", [])
        raise ReadError(
            f"{path}: a DatasetDict with splits {', '.join(splits)}; pass one split's directory, "
            f"like {path / (splits[0] if splits else 'train')}"
        )
    pa = _pyarrow(path)
    state = path / "state.json"
    if state.is_file():
        files = [path / entry["filename"] for entry in json.loads(state.read_text("utf-8"))["_data_files"]]
    else:
        files = sorted(path.glob("data-*.arrow")) or sorted(path.glob("*.arrow"))
    if not files:
        raise ReadError(f"{path}: no .arrow files; not a directory written by datasets' save_to_disk")

    def batches() -> Iterator[Any]:
        for file in files:
            with pa.memory_map(str(file)) as source:
                try:
                    reader = pa.ipc.open_stream(source)  # what datasets writes
                except pa.ArrowInvalid:
                    reader = pa.ipc.open_file(source)
                yield from reader

    try:
        yield from _table_records(path, batches())
    except (pa.ArrowException, OSError) as e:
        raise ReadError(f"{path}: not a readable datasets directory: {e}") from None


def _table_records(path: Path, batches: Iterable[Any]) -> Iterator[Record]:
    i = 0
    for batch in batches:
        for row in batch.to_pylist():
            yield f"{path}: record {i}", i, {k: v for k, v in row.items() if v is not None}
            i += 1


def _pyarrow(path: Path) -> Any:
    try:
        import pyarrow
    except ImportError:
        raise ReadError(
            f"{path}: reading parquet and datasets directories needs pyarrow: pip install pyarrow"
        ) from None
    return pyarrow


# --- writing ------------------------------------------------------------------------------------------------------


def _write_jsonl(problems: Iterable[Problem], write: Callable[[bytes], object], path: Path) -> None:
    for problem in problems:
        try:
            line = json.dumps(problem.to_dict(), ensure_ascii=False)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{path}: problem {problem.id!r} cannot be written as JSON: {e}") from None
        write(line.encode("utf-8") + b"\n")


def _write_parquet(records: list[dict[str, Any]], path: Path) -> None:
    """One column per field any record has, nulls where a record lacks it.

    Not `Table.from_pylist`: it takes the columns from the first record alone and drops the rest silently.
    """
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path}: writing parquet needs pyarrow: pip install pyarrow") from None
    names = list(dict.fromkeys(["id", "problem", "answer", *(key for record in records for key in record)]))
    columns = {}
    for name in names:
        values = [record.get(name) for record in records]
        try:
            columns[name] = pa.array(
                values, type=pa.string() if name in ("id", "problem", "answer") else None
            )
        except (pa.ArrowException, TypeError, ValueError) as e:
            raise ValueError(f"{path}: field {name!r} cannot be written as a parquet column: {e}") from None
    with atomic_write(path, "wb") as f:
        pq.write_table(pa.table(columns), f)
