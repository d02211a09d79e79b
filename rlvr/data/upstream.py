"""The public files each registered set is built from, pinned by commit, and how to read their formats.

`SOURCES[name]` lists the upstream files `rlvr.data.convert` turns into set `name`; `rlvr.data.fetch` downloads them.
A set's first repository is the one the registry names; the others are joins (a second wording, an alternative
answer, labels). The text helpers reproduce the derivations the data README documents: the last `\\boxed{}` of a
solution, and backslashes restored where a JSON writer turned `\\frac` into a form feed.

What this module does not know: networks, files on disk, checksums.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

Files = Mapping[str, bytes]  # upstream path (inside its repository) -> content
Record = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Upstream:
    """Files a converter reads from one public repository at a pinned commit."""

    repo: str
    commit: str
    paths: tuple[str, ...]  # files; with `archive`, folders whose every file is read
    archive: bool = False  # thousands of files: read the repository archive, not one request per file


QWEN = "QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465"
DEEPSCALER = "agentica-project/deepscaler", "95ef74ffee001cce89463f2d61dfdce1d03576c1"
GSM8K = "openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c"
MATH_COPY = "aiwaves-cn/agents", "e8c4e3c2d19739d3dff59e577d1c97090cc15f59"
MATHARENA = "eth-sri/matharena", "96440b20d0b90bb504edb7ee43c0e1e46567569f"
LIGHT_R1 = "Qihoo360/Light-R1", "48c9083b9ca5ae3cecc2a3b7fb82572045447eb0"
SIMPLERL = "hkust-nlp/simpleRL-reason", "cf1c7858bfc145a27aa733e75d930d34f0d318a6"
SIMPLERL_PR57 = "hkust-nlp/simpleRL-reason", "bdc9f803c8e0dd749e1aa778d40d012626b01ff6"  # refs/pull/57/head
LIMR = "GAIR-NLP/LIMR", "98ebf1bd54cc4539a9ac2332327ab0200bc2a88f"

MATH_DIR = "src/agents/datasets/data/math"
AIME25_FILES = tuple(
    f"data/aime/aime_2025_{part}/{name}"
    for part in ("I", "II")
    for name in ("answers.csv", *(f"problems/{n}.tex" for n in range(1, 16)))
)


def _up(repo: tuple[str, str], *paths: str, archive: bool = False) -> Upstream:
    return Upstream(repo[0], repo[1], paths, archive)


SOURCES: dict[str, tuple[Upstream, ...]] = {
    "aime24": (_up(QWEN, "evaluation/data/aime24/test.jsonl"),),
    "aime25": (
        _up(MATHARENA, *AIME25_FILES),
        _up(LIGHT_R1, "deepscaler-release/deepscaler/data/test/aime25.json"),
    ),
    "amc23": (_up(QWEN, "evaluation/data/amc23/test.jsonl"),),
    "amc22_23": (_up(DEEPSCALER, "deepscaler/data/test/amc.json"),),
    "math500": (_up(SIMPLERL, "examples/simplelr_math_eval/data/math500/test.jsonl"),),
    "minerva_math": (
        _up(QWEN, "evaluation/data/minerva_math/test.jsonl"),
        _up(DEEPSCALER, "deepscaler/data/test/minerva.json"),
    ),
    "olympiadbench": (_up(QWEN, "evaluation/data/olympiadbench/test.jsonl"),),
    "gsm8k": (_up(GSM8K, "grade_school_math/data/test.jsonl"),),
    "math_train": (_up(MATH_COPY, f"{MATH_DIR}/train", archive=True),),
    "simplerl_math_l3to5": (
        _up(LIMR, "data/prompts/math.8k.json"),
        _up(SIMPLERL_PR57, "train.parquet"),
        _up(MATH_COPY, f"{MATH_DIR}/train", f"{MATH_DIR}/test", archive=True),
    ),
    "gsm8k_train": (_up(GSM8K, "grade_school_math/data/train.jsonl"),),
    "aime_1983_2023": (_up(DEEPSCALER, "deepscaler/data/train/aime.json"),),
}


class ConvertError(ValueError):
    """Upstream bytes that do not have the shape a converter expects; the message names the file."""


# --- reading upstream formats ---


def read_jsonl(files: Files, path: str) -> list[Record]:
    try:
        return [json.loads(line) for line in files[path].decode("utf-8").splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: not JSONL ({e})") from None


def read_json(files: Files, path: str) -> Any:
    try:
        return json.loads(files[path].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConvertError(f"{path}: not JSON ({e})") from None


def field(obj: Record, key: str, path: str) -> Any:
    if key not in obj:
        raise ConvertError(f"{path}: a record has no field {key!r}")
    return obj[key]


def number_text(value: Any) -> str:
    """27.0 -> "27", 2.5 -> "2.5", "27" -> "27" (AMC answers are JSON floats upstream)."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


_BOX = re.compile(r"\\(?:boxed|fbox)")


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{...}` / `\\fbox{...}` (balanced braces; `\\boxed 5` too), stripped; None if none."""
    for match in reversed(list(_BOX.finditer(text))):
        rest = text[match.end() :]
        if rest.startswith("{"):
            depth = 0
            for i, c in enumerate(rest):
                depth += (c == "{") - (c == "}")
                if depth == 0:
                    return rest[1:i].strip()
            continue  # unbalanced: look at the box before it
        if rest.startswith(" "):  # `\boxed 5`: the next token
            token = rest.lstrip(" ").split("$", 1)[0].split()
            if token:
                return token[0].strip()
    return None


# A JSON writer that did not escape backslashes turns `\frac` into form feed + "rac" (likewise `\t`, `\b`). A control
# character followed by letters that make one of these commands gets its backslash back; any other (a tab before
# `draw` in Asymptote code) is left alone.
_LOST_ESCAPE = re.compile(r"([\f\t\b])([A-Za-z]+)")
_ESCAPE_LETTER = {"\f": "f", "\t": "t", "\b": "b"}
_COMMANDS = frozenset({
    "frac", "fbox", "forall", "flat",
    "text", "textbf", "textit", "textrm", "texttt", "times", "triangle", "theta", "tan", "tau", "tilde", "tfrac",
    "boxed", "binom", "beta", "bar", "begin", "bf", "big", "bigg", "bmod", "bot", "bullet", "breve", "bigcup",
})  # fmt: skip


def repair_escapes(text: str) -> tuple[str, int]:
    """Put back backslashes eaten as JSON escapes; returns the text and how many were repaired."""
    fixed = 0

    def fix(m: re.Match[str]) -> str:
        nonlocal fixed
        command = _ESCAPE_LETTER[m[1]] + m[2]
        if command not in _COMMANDS:
            return m[0]
        fixed += 1
        return "\\" + command

    return _LOST_ESCAPE.sub(fix, text), fixed


def read_parquet(files: Files, path: str, columns: list[str]) -> list[Record]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ConvertError(f"reading {path} needs pyarrow: pip install pyarrow") from None
    try:
        return pq.read_table(io.BytesIO(files[path]), columns=columns).to_pylist()
    except Exception as e:  # pyarrow raises its own error types for a damaged file
        raise ConvertError(f"{path}: not a readable parquet file ({e})") from None
