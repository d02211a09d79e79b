"""One record schema for every problem set: what a problem is, and how a bad record is reported.

A record needs an id, a problem and a usable answer (a non-empty string; numbers are accepted and written as
their decimal text). Everything else is optional; fields the schema does not name are kept in `extra`, so a
record round-trips through the pipeline unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

KNOWN = ("id", "problem", "answer", "solution", "source", "level", "type")


class SchemaError(ValueError):
    """A record that breaks the schema; the message names the file, the line and the field."""


@dataclass(slots=True)
class Problem:
    id: str  # unique within its dataset
    problem: str  # the statement, LaTeX / markdown as in the source
    answer: str  # the gold final answer ("" only while a pipeline step may still fill it from `solution`)
    solution: str | None = None  # a worked solution, where the source has one
    source: str | None = None  # competition or dataset label
    level: int | None = None  # MATH difficulty 1-5
    type: str | None = None  # subject / course / subfield
    extra: dict[str, Any] = field(default_factory=dict)  # every other field, kept as is

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"id": self.id, "problem": self.problem, "answer": self.answer}
        for key in ("solution", "source", "level", "type"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        out.update(self.extra)
        return out


def answer_text(value: Any) -> str | None:
    """A gold answer as text: strings stripped, numbers in plain decimal (27.0 -> "27"); None when unusable."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return format(Decimal(repr(value)).normalize(), "f")
    return None


def to_problem(obj: dict[str, Any], where: str, *, require_answer: bool = True) -> Problem:
    """Validate one mapped record (`where` is "file:line" for messages). Raises SchemaError."""
    for key in ("id", "problem"):
        if key not in obj or obj[key] is None:
            raise SchemaError(f"{where}: missing field {key!r}")
    if isinstance(obj["id"], bool) or not isinstance(obj["id"], str | int):
        raise SchemaError(
            f"{where}: field 'id' must be a string or an integer, got {type(obj['id']).__name__}"
        )
    if not isinstance(obj["problem"], str) or not obj["problem"].strip():
        raise SchemaError(f"{where}: field 'problem' must be a non-empty string")
    answer = answer_text(obj.get("answer"))
    if answer is None and "answer" in obj and obj["answer"] is not None:
        raise SchemaError(
            f"{where}: field 'answer' must be a string or a number, got {type(obj['answer']).__name__}"
        )
    if require_answer and not answer:
        raise SchemaError(f"{where}: no usable answer (field 'answer' is missing or empty)")
    level = obj.get("level")
    if level is not None and (isinstance(level, bool) or not isinstance(level, int)):
        if isinstance(level, str) and level.strip().lower().removeprefix("level").strip().isdigit():
            level = int(level.strip().lower().removeprefix("level"))
        else:
            level = None  # MATH's "Level ?": unknown, not an error
    for key in ("solution", "source", "type"):
        if obj.get(key) is not None and not isinstance(obj[key], str):
            raise SchemaError(f"{where}: field {key!r} must be a string, got {type(obj[key]).__name__}")
    return Problem(
        id=str(obj["id"]),
        problem=obj["problem"],
        answer=answer or "",
        solution=obj.get("solution"),
        source=obj.get("source"),
        level=level,
        type=obj.get("type"),
        extra={k: v for k, v in obj.items() if k not in KNOWN},
    )
