"""Labeled generation files: model responses with a gold answer and, where the authors graded them, a label.

Reads the formats public math evaluations save their outputs in, and flattens each file into one
`LabeledResponse` per sampled response:

- ``harness``: the Qwen2.5-Math evaluation harness and its forks (SkyThought's ``Qwen2.5-Math/evaluation``).
  JSONL, one problem per line: ``idx``, ``answer`` (raw gold), ``gt`` (the harness's normalised gold),
  ``code`` (list of responses, the response text only, no prompt), ``score`` (list of bool labels).
- ``skythought_tools``: SkyThought ``tools/`` output. One JSON dict keyed by problem text; each value has
  ``unique_id``, ``answer`` and ``responses`` = {sampling key: {``content``, ``correctness``}}.
- ``aime_preview``: GAIR's AIME-Preview harness. JSONL: ``id``, ``gold_answer``, ``generated_responses`` (list),
  ``answers_correctness`` (list of bool).
- ``plain``: JSONL of ``{"response": str, "answer": str}`` with optional ``"label": bool`` and ``"id"``.
- ``rlvr_samples``: rlvr's own eval samples (see `rlvr.eval.metrics.SampleRecord`). JSONL, one sample per line:
  ``problem_id``, ``sample_index``, ``text``, ``answer`` (gold), optional ``correct`` (the stored label).

The gold we hand to a grader is the raw dataset answer, not the harness's normalised ``gt``: that
normalisation sometimes destroys the answer (``\\text{east}`` becomes ``""``, ``3 \\pm 2\\sqrt{2}`` becomes
``32\\sqrt{2}``), and the stored labels were graded against it. ``harness_gold`` keeps it for adjudication.

This module knows file formats only; it does not grade, and it never imports torch.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rlvr.io import JsonlError, read_jsonl

Format = Literal["harness", "skythought_tools", "aime_preview", "plain", "rlvr_samples"]


@dataclass(frozen=True, slots=True)
class LabeledResponse:
    """One model response to grade, with its gold answer and the label its authors gave it."""

    file: str  # the file it came from: relative to the root it was read under, else the path as given
    record_id: (
        str  # unique within `file`: the problem id, with "#<sample>" when a problem has several samples
    )
    response: str  # the model's text (response only, no prompt)
    gold: str  # the raw gold answer, as the dataset states it
    label: bool | None  # the stored verdict (True = judged correct); None when the file has none
    harness_gold: str | None = None  # the gold after the harness's own normalisation, when the file keeps one


@dataclass(frozen=True, slots=True)
class Adjudication:
    """A human re-judgement of one stored label, keyed by (file, record_id)."""

    file: str
    record_id: str
    label: bool  # the stored label this entry overrides (to notice when the data changes under it)
    adjudicated: bool  # whether the response is in fact correct
    reason: str


class GenerationFormatError(ValueError):
    """A generation file that is malformed or in no known format. The message names the file and line."""


def default_graders_dir() -> Path:
    """The labeled-generations root: ``$RLVR_GRADERS_DIR``, else ``../shared/graders_data`` beside the repo."""
    env = os.environ.get("RLVR_GRADERS_DIR")
    if env:
        return Path(env)
    repo_root = Path(__file__).resolve().parents[2]
    return repo_root.parent / "shared" / "graders_data"


def find_labeled_files(root: Path) -> list[Path]:
    """Every ``.json``/``.jsonl`` file under `root` in a known format with stored labels, sorted by path.

    Files in other shapes (metrics summaries, test-case tables) are skipped, not reported as errors.
    """
    found = []
    for path in sorted(p for p in Path(root).rglob("*") if p.suffix in (".json", ".jsonl") and p.is_file()):
        fmt = _sniff(path)
        if fmt is None:
            continue
        if fmt in _LABEL_KEY and _LABEL_KEY[fmt] not in _first_jsonl_record(path):
            continue
        found.append(path)
    return found


def detect_format(path: Path) -> Format:
    """The format of a generation file, from its extension and the keys of its first record."""
    fmt = _sniff(Path(path))
    if fmt is None:
        raise GenerationFormatError(f"{path}: not a known generation format ({_describe(Path(path))})")
    return fmt


def read_generations(path: Path, root: Path | None = None) -> list[LabeledResponse]:
    """Read one generation file into a flat list of responses, in file order.

    `root`: when given, `LabeledResponse.file` is the path relative to it (posix), so ids survive a move.
    Raises `GenerationFormatError` naming the file and line on malformed input.
    """
    path = Path(path)
    name = path.relative_to(root).as_posix() if root is not None else str(path)
    fmt = detect_format(path)
    if fmt == "skythought_tools":
        out = list(_read_skythought_tools(path, name))
    else:
        reader = {
            "harness": _harness_record,
            "aime_preview": _aime_preview_record,
            "plain": _plain_record,
            "rlvr_samples": _rlvr_sample_record,
        }[fmt]
        out = []
        for line_no, obj in _jsonl(path):
            try:
                out.extend(reader(obj, name, line_no))
            except (KeyError, TypeError, ValueError) as e:
                raise GenerationFormatError(f"{path}:{line_no}: bad {fmt} record: {_message(e)}") from e
    _check_unique(out, path)
    return out


def count_records(path: Path) -> int:
    """Records in a generation file as it stores them: problems for the multi-sample formats (a harness line, a
    skythought_tools entry), lines for ``plain`` and ``rlvr_samples`` (one response each)."""
    path = Path(path)
    if detect_format(path) == "skythought_tools":
        return len(_load_json(path))
    return sum(1 for _ in _jsonl(path))


def published_accuracy(path: Path) -> float | None:
    """The accuracy the file's producer published beside it, as a fraction; None when there is none.

    Only the Qwen2.5-Math harness writes one: ``<stem>_metrics.json`` next to ``<stem>.jsonl``, whose ``acc`` is
    in percent, rounded to one decimal.
    """
    path = Path(path)
    metrics = path.with_name(f"{path.stem}_metrics.json")
    if path.suffix != ".jsonl" or not metrics.is_file():
        return None
    data = _load_json(metrics)
    acc = data.get("acc") if isinstance(data, dict) else None
    if isinstance(acc, bool) or not isinstance(acc, (int, float)):
        raise GenerationFormatError(f"{metrics}: 'acc' must be a number, got {acc!r}")
    return acc / 100


def read_adjudication(path: Path) -> dict[tuple[str, str], Adjudication]:
    """Read an adjudication JSONL into {(file, record_id): Adjudication}; a missing file is an empty table."""
    path = Path(path)
    if not path.exists():
        return {}
    table: dict[tuple[str, str], Adjudication] = {}
    for line_no, obj in _jsonl(path):
        try:
            entry = Adjudication(
                file=_str(obj["file"], "file"),
                record_id=_str(obj["record_id"], "record_id"),
                label=_bool(obj["label"], "label"),
                adjudicated=_bool(obj["adjudicated"], "adjudicated"),
                reason=_str(obj.get("reason", ""), "reason"),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise GenerationFormatError(f"{path}:{line_no}: bad adjudication entry: {_message(e)}") from e
        key = (entry.file, entry.record_id)
        if key in table:
            raise GenerationFormatError(f"{path}:{line_no}: duplicate adjudication for {key}")
        table[key] = entry
    return table


# --- one reader per format; each turns one parsed record into responses --------------------------------


def _samples(
    obj: dict[str, Any], name: str, *, id_key: str, gold_key: str, responses_key: str, labels_key: str
) -> list[LabeledResponse]:
    """One LabeledResponse per (response, label) pair of a record that holds several samples of one problem."""
    responses, labels = _list(obj[responses_key], responses_key), _list(obj[labels_key], labels_key)
    if len(responses) != len(labels):
        raise ValueError(
            f"{len(responses)} responses in {responses_key!r} but {len(labels)} labels in {labels_key!r}"
        )
    gold = _gold(obj[gold_key], gold_key)
    harness_gold = _gold(obj["gt"], "gt") if "gt" in obj else None
    return [
        LabeledResponse(
            file=name,
            record_id=_sample_id(obj[id_key], k, len(responses)),
            response=_str(resp, f"{responses_key}[]"),
            gold=gold,
            label=_bool(lab, f"{labels_key}[]"),
            harness_gold=harness_gold,
        )
        for k, (resp, lab) in enumerate(zip(responses, labels, strict=True))
    ]


def _harness_record(obj: dict[str, Any], name: str, line_no: int) -> list[LabeledResponse]:
    return _samples(obj, name, id_key="idx", gold_key="answer", responses_key="code", labels_key="score")


def _aime_preview_record(obj: dict[str, Any], name: str, line_no: int) -> list[LabeledResponse]:
    return _samples(
        obj,
        name,
        id_key="id",
        gold_key="gold_answer",
        responses_key="generated_responses",
        labels_key="answers_correctness",
    )


def _plain_record(obj: dict[str, Any], name: str, line_no: int) -> list[LabeledResponse]:
    label = obj.get("label")
    record_id = _id(obj["id"]) if "id" in obj else str(line_no)
    return [
        LabeledResponse(
            file=name,
            record_id=record_id,
            response=_str(obj["response"], "response"),
            gold=_gold(obj["answer"], "answer"),
            label=None if label is None else _bool(label, "label"),
        )
    ]


def _rlvr_sample_record(obj: dict[str, Any], name: str, line_no: int) -> list[LabeledResponse]:
    index = obj["sample_index"]
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise TypeError(f"'sample_index' must be a non-negative int, got {index!r}")
    label = obj.get("correct")
    return [
        LabeledResponse(
            file=name,
            record_id=f"{_id(obj['problem_id'])}#{index}",
            response=_str(obj["text"], "text"),
            gold=_gold(obj["answer"], "answer"),
            label=None if label is None else _bool(label, "correct"),
        )
    ]


def _read_skythought_tools(path: Path, name: str) -> Iterator[LabeledResponse]:
    data = _load_json(path)
    if not isinstance(data, dict):
        raise GenerationFormatError(
            f"{path}: expected a JSON object keyed by problem, got {type(data).__name__}"
        )
    for problem, obj in data.items():
        where = f"{path}: problem {problem[:60]!r}"
        try:
            responses = obj["responses"]
            if not isinstance(responses, dict):
                raise TypeError(f"'responses' must be an object, got {type(responses).__name__}")
            base = _id(obj["unique_id"]) if "unique_id" in obj else problem
            gold = _gold(obj["answer"], "answer")
            for key, resp in responses.items():
                yield LabeledResponse(
                    file=name,
                    record_id=base if len(responses) == 1 else f"{base}#{key}",
                    response=_str(resp["content"], "content"),
                    gold=gold,
                    label=_bool(resp["correctness"], "correctness"),
                )
        except (KeyError, TypeError, ValueError) as e:
            raise GenerationFormatError(f"{where}: bad skythought_tools record: {_message(e)}") from e


# --- detection and low-level parsing ------------------------------------------------------------------

# formats whose labels are optional: the key a labeled file has
_LABEL_KEY: dict[str, str] = {"plain": "label", "rlvr_samples": "correct"}


def _sniff(path: Path) -> Format | None:
    if path.suffix == ".json":
        try:
            data = _load_json(path)
        except GenerationFormatError:
            return None
        first = next(iter(data.values()), None) if isinstance(data, dict) else None
        return "skythought_tools" if isinstance(first, dict) and "responses" in first else None
    if path.suffix == ".jsonl":
        try:
            keys = _first_jsonl_record(path).keys()
        except GenerationFormatError:
            return None
        if {"code", "score", "idx", "answer"} <= keys:
            return "harness"
        if {"generated_responses", "answers_correctness", "gold_answer", "id"} <= keys:
            return "aime_preview"
        if {"problem_id", "sample_index", "text", "answer"} <= keys:
            return "rlvr_samples"
        if {"response", "answer"} <= keys:
            return "plain"
    return None


def _describe(path: Path) -> str:
    if path.suffix == ".jsonl":
        try:
            return f"first record has keys {sorted(_first_jsonl_record(path))}"
        except GenerationFormatError as e:
            return str(e)
    return "expected .jsonl, or a .json object of records with 'responses'"


def _first_jsonl_record(path: Path) -> dict[str, Any]:
    for _, obj in _jsonl(path):
        return obj
    raise GenerationFormatError(f"{path}: empty file")


def _jsonl(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based line number, object) for each non-blank line."""
    try:
        yield from read_jsonl(path)
    except JsonlError as e:
        raise GenerationFormatError(str(e)) from e


def _load_json(path: Path) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise GenerationFormatError(f"{path}:{e.lineno}: invalid JSON: {e.msg} (column {e.colno})") from e


def _check_unique(rows: list[LabeledResponse], path: Path) -> None:
    seen: set[str] = set()
    for row in rows:
        if row.record_id in seen:
            raise GenerationFormatError(f"{path}: duplicate record id {row.record_id!r}")
        seen.add(row.record_id)


def _sample_id(problem_id: Any, k: int, n: int) -> str:
    return _id(problem_id) if n == 1 else f"{_id(problem_id)}#{k}"


def _id(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise TypeError(f"id must be an int or a string, got {value!r}")
    return str(value)


def _gold(value: Any, field: str) -> str:
    """Golds are strings; some harness files store numeric golds as floats (AMC23: 27.0 means "27")."""
    if isinstance(value, bool):
        raise TypeError(f"'{field}' must be a string or number, got {value!r}")
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)):
        return repr(value)
    return _str(value, field)


def _str(value: Any, field: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"'{field}' must be a string, got {type(value).__name__}")
    return value


def _bool(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"'{field}' must be true/false, got {value!r}")
    return value


def _list(value: Any, field: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"'{field}' must be a list, got {type(value).__name__}")
    return value


def _message(e: Exception) -> str:
    return f"missing key {e}" if isinstance(e, KeyError) else str(e)
