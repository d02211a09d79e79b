"""Upstream bytes -> rlvr records: one converter per registered set, reproducing the reference files byte for byte.

Each converter reads the files of `upstream.SOURCES[name]` (a mapping upstream path -> bytes, so it runs offline on
bytes from anywhere) and returns the records in the order, key order and values of the reference JSONL whose sha256
the registry holds. `to_jsonl` is the one serialisation: `json.dumps(..., ensure_ascii=False)` with the default
separators, U+2028/U+2029 escaped (so any line splitter sees one record per line), each record on a `\\n`-ended line.
How each file was derived (id schemes, answer extraction, escape repairs, joins) is the data README's provenance;
comments here point at the step a line reproduces.

What this module does not know: networks, files on disk, the registry's checksums (`rlvr.data.fetch` does those).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable
from typing import Any

from rlvr.data.upstream import (
    MATH_DIR,
    SOURCES,
    ConvertError,
    Files,
    Record,
    field,
    last_boxed,
    number_text,
    read_json,
    read_jsonl,
    read_parquet,
    repair_escapes,
)


def convert(name: str, files: Files) -> list[Record]:
    """The records of registered set `name`, built from its upstream files (see `SOURCES[name]`)."""
    if name not in CONVERTERS:
        raise ValueError(f"no converter for {name!r}; converters: {', '.join(sorted(CONVERTERS))}")
    missing = [p for up in SOURCES[name] if not up.archive for p in up.paths if p not in files]
    if missing:
        raise ConvertError(f"{name}: upstream file(s) missing: {', '.join(missing)}")
    try:
        return CONVERTERS[name](files)
    except ConvertError:
        raise
    except (
        KeyError,
        IndexError,
        TypeError,
        AttributeError,
        ValueError,
    ) as e:  # a field renamed or retyped upstream
        raise ConvertError(
            f"{name}: upstream records are not shaped as expected ({type(e).__name__}: {e})"
        ) from None


def to_jsonl(records: list[Record]) -> bytes:
    """The reference serialisation (see the module docstring)."""
    lines = (
        json.dumps(r, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
        for r in records
    )
    return "".join(line + "\n" for line in lines).encode("utf-8")


def _aops_part(url: str, pattern: str) -> re.Match[str]:
    match = re.search(pattern, url)
    if match is None:
        raise ConvertError(f"unexpected AoPS URL {url!r}")
    return match


def aime24(files: Files) -> list[Record]:
    path = SOURCES["aime24"][0].paths[0]
    out = []
    for obj in read_jsonl(files, path):
        url = field(obj, "url", path)
        m = _aops_part(url, r"(\d{4})_AIME_(I+)_Problems/Problem_(\d+)")  # the id comes from the AoPS URL
        out.append({
            "id": f"aime{m[1][2:]}-{m[2]}-{m[3]}", "problem": obj["problem"], "answer": number_text(obj["answer"]),
            "solution": obj["solution"], "source": f"AIME {m[1]} {m[2]}", "url": url, "orig_id": str(obj["id"]),
        })  # fmt: skip
    return out


def _amc(obj: Record, path: str) -> tuple[str, str]:
    url = field(obj, "url", path)
    m = _aops_part(url, r"(\d{4})_AMC_(\d+[AB])_Problems/Problem_(\d+)")
    return f"amc{m[1][2:]}-{m[2]}-{m[3]}", f"AMC {m[1]} {m[2]}"


def aime25(files: Files) -> list[Record]:
    _, light_r1 = SOURCES["aime25"]
    # problem_alt: Light-R1's AoPS wording, 30 records in order I-1 .. II-15, escapes repaired
    alt = [repair_escapes(obj["problem"])[0] for obj in read_json(files, light_r1.paths[0])]
    if len(alt) != 30:
        raise ConvertError(f"{light_r1.paths[0]}: expected 30 problems, found {len(alt)}")
    out = []
    for k, part in enumerate(("I", "II")):
        folder = f"data/aime/aime_2025_{part}"
        rows = csv.DictReader(io.StringIO(files[f"{folder}/answers.csv"].decode("utf-8")))
        answers = {row["id"].strip(): row["answer"].strip() for row in rows}
        for n in range(1, 16):
            if str(n) not in answers:
                raise ConvertError(f"{folder}/answers.csv: no answer for problem {n}")
            out.append({
                "id": f"aime25-{part}-{n}", "problem": files[f"{folder}/problems/{n}.tex"].decode("utf-8").strip(),
                "answer": answers[str(n)], "source": f"AIME 2025 {part}", "problem_alt": alt[15 * k + n - 1],
            })  # fmt: skip
    return out


def amc23(files: Files) -> list[Record]:
    path = SOURCES["amc23"][0].paths[0]
    out = []
    for obj in read_jsonl(files, path):
        id_, source = _amc(obj, path)
        out.append({
            "id": id_, "problem": obj["problem"], "answer": number_text(obj["answer"]), "source": source,
            "url": obj["url"], "orig_id": str(obj["id"]),
        })  # fmt: skip
    return out


def amc22_23(files: Files) -> list[Record]:
    path = SOURCES["amc22_23"][0].paths[0]
    out = []
    for obj in read_json(files, path):
        id_, source = _amc(obj, path)
        out.append({
            "id": id_, "problem": obj["problem"], "answer": number_text(obj["answer"]), "source": source,
            "url": obj["url"], "difficulty": obj["difficulty"],
        })  # fmt: skip
    return out


def math500(files: Files) -> list[Record]:
    path = SOURCES["math500"][0].paths[0]
    out = []
    for obj in read_jsonl(files, path):
        out.append({
            "id": field(obj, "unique_id", path), "problem": obj["problem"], "answer": obj["answer"],
            "solution": obj["solution"], "type": obj["subject"], "level": int(obj["level"]),
            "source": "MATH (PRM800K MATH-500 test subset)",
        })  # fmt: skip
    return out


def minerva_math(files: Files) -> list[Record]:
    qwen, deepscaler = (up.paths[0] for up in SOURCES["minerva_math"])
    # answer_alt: DeepScaleR's LaTeX-style answer for the same idx, a one-element list like ["9.6\n"]
    alt = {obj["idx"]: _alt_answer(obj["answer"]) for obj in read_json(files, deepscaler)}
    out = []
    for obj in read_jsonl(files, qwen):
        answer = last_boxed(obj["solution"])  # as Qwen's evaluator does
        if answer is None:
            raise ConvertError(f"{qwen}: idx {obj['idx']}: no \\boxed{{}} in the solution")
        out.append({
            "id": f"minerva-{obj['idx']}", "problem": obj["problem"], "answer": answer, "solution": obj["solution"],
            "type": obj["type"], "source": "Minerva OCWCourses (MIT OCW)", "answer_alt": alt.get(obj["idx"]),
        })  # fmt: skip
    return out


def _alt_answer(value: Any) -> str:
    if isinstance(value, str) and value.startswith("['"):  # a list written as its Python repr
        value = [value[2:].removesuffix("']").replace("\\n", "\n")]
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).strip()


def olympiadbench(files: Files) -> list[Record]:
    path = SOURCES["olympiadbench"][0].paths[0]
    out = []
    for obj in read_jsonl(files, path):
        raw = field(obj, "final_answer", path)[0]
        out.append({
            "id": f"olympiadbench-{obj['id']}", "problem": obj["question"], "answer": raw.replace("$", ""),
            "answer_raw": raw, "solution": "\n\n".join(obj["solution"]), "type": obj["subfield"],
            "answer_type": obj["answer_type"], "is_multiple_answer": obj["is_multiple_answer"], "unit": obj["unit"],
            "source": "OlympiadBench (OE_TO_maths_en_COMP)", "orig_id": str(obj["id"]),
        })  # fmt: skip
    return out


def _gsm8k(files: Files, name: str, split: str) -> list[Record]:
    path = SOURCES[name][0].paths[0]
    out = []
    for k, obj in enumerate(read_jsonl(files, path)):
        solution = field(obj, "answer", path)
        if "####" not in solution:
            raise ConvertError(f"{path}: record {k} has no '####' final answer")
        answer = solution.rsplit("####", 1)[1].strip()
        out.append({
            "id": f"gsm8k-{split}-{k}", "problem": obj["question"], "answer": answer,
            "answer_numeric": answer.replace(",", ""), "solution": solution, "source": f"GSM8K {split}",
        })  # fmt: skip
    return out


def gsm8k(files: Files) -> list[Record]:
    return _gsm8k(files, "gsm8k", "test")


def gsm8k_train(files: Files) -> list[Record]:
    return _gsm8k(files, "gsm8k_train", "train")


def aime_1983_2023(files: Files) -> list[Record]:
    path = SOURCES["aime_1983_2023"][0].paths[0]
    out = []
    for obj in read_json(files, path):
        year, number = obj["year"], obj["problem_number"] or 15  # the source numbers 2023's Problem 15s as 0
        part = "I" if year < 2000 else "I" * obj["aime_number"]  # a single AIME before 2000
        out.append({
            "id": f"aime-{year}-{part}-{number}", "problem": obj["problem"], "answer": number_text(obj["answer"]),
            "solution": obj["solution"], "source": f"AIME {year}",
            "difficulty": obj["difficulty"],
        })  # fmt: skip
    return out


# The two MATH-train solutions that end in an empty `\boxed{}`: both say there are no primes in a range.
MATH_EMPTY_BOX = {"train/number_theory/7115.json": "0", "train/number_theory/7117.json": "0"}
EMPTY_BOX_NOTE = "source solution has an empty \\boxed{}; answer filled by hand from the solution text"


def _math_files(files: Files, split: str) -> list[tuple[str, Record]]:
    """(MATH id like "train/algebra/12.json", record) for the MATH copy's files of `split`, in (subject, number) order."""
    prefix = f"{MATH_DIR}/"
    found = []
    for path in files:
        if not (path.startswith(f"{prefix}{split}/") and path.endswith(".json")):
            continue
        math_id = path.removeprefix(prefix)
        subject, number = math_id.split("/")[1], math_id.rsplit("/", 1)[1].removesuffix(".json")
        found.append(
            ((subject, int(number) if number.isdigit() else -1, math_id), math_id, read_json(files, path))
        )
    return [(math_id, obj) for _, math_id, obj in sorted(found, key=lambda t: t[0])]


def _math_record(math_id: str, obj: Record) -> Record:
    problem, _ = repair_escapes(obj["problem"])
    solution, _ = repair_escapes(obj["solution"])
    answer = last_boxed(solution)
    level = obj["level"].removeprefix("Level ").strip()
    record = {
        "id": math_id, "problem": problem, "answer": answer or MATH_EMPTY_BOX.get(math_id, ""), "solution": solution,
        "level": int(level) if level.isdigit() else None, "type": obj["type"], "source": "MATH",
    }  # fmt: skip
    if not answer and math_id in MATH_EMPTY_BOX:
        record["answer_note"] = EMPTY_BOX_NOTE
    return record


def math_train(files: Files) -> list[Record]:
    records = [_math_record(math_id, obj) for math_id, obj in _math_files(files, "train")]
    if not records:
        raise ConvertError(f"no MATH train files under {MATH_DIR}/train")
    return records


SIMPLERL_SOURCE = "MATH (SimpleRL-Zoo level 3-5 training set)"
NONE_NOTE = "source answer was 'None'; replaced by last \\boxed{} of the MATH solution"
EMPTY_NOTE = (
    "source answer was empty (MATH solution has an empty \\boxed{}); filled by hand from the solution text"
)


def simplerl_math_l3to5(files: Files) -> list[Record]:
    """LIMR's problems and answers; level and type from SimpleRL's parquet (PR 57); solution and id from MATH."""
    limr, parquet, _ = SOURCES["simplerl_math_l3to5"]
    problems = read_json(files, limr.paths[0])
    labels = read_parquet(files, parquet.paths[0], ["question", "level", "subject"])
    if len(labels) != len(problems):
        raise ConvertError(f"{parquet.paths[0]}: {len(labels)} rows, but LIMR has {len(problems)} problems")
    # Match each problem to the MATH files by whitespace-normalised text. A problem MATH holds twice (and LIMR too)
    # takes a different file each time, in path order (as text: 24377.json before 2463.json), train before test.
    math: dict[str, list[Record]] = {}
    for split in ("train", "test"):
        for math_id, obj in sorted(_math_files(files, split), key=lambda pair: pair[0]):
            record = _math_record(math_id, obj)
            math.setdefault(_squash(record["problem"]), []).append(record)
    out = []
    for k, (obj, label) in enumerate(zip(problems, labels, strict=True)):
        problem, _ = repair_escapes(obj["prompt"])
        if label["question"] != obj["prompt"]:
            raise ConvertError(f"{parquet.paths[0]}: row {k} is not LIMR's problem {k}")
        candidates = math.get(_squash(problem))
        if not candidates:
            raise ConvertError(f"{limr.paths[0]}: problem {k} ({obj['id']}) matches no MATH problem")
        match = candidates.pop(0) if len(candidates) > 1 else candidates[0]
        record = {
            "id": f"simplerl-{k}", "problem": problem, "answer": obj["answer"], "solution": match["solution"],
            "level": label["level"], "type": label["subject"], "math_id": match["id"], "source": SIMPLERL_SOURCE,
            "limr_id": obj["id"],
        }  # fmt: skip
        # two answers are "None" and two "": MATH's own answer (or the hand-filled 0) replaces them
        if obj["answer"] in ("None", ""):
            record["answer"] = match["answer"]
            record["answer_orig"] = obj["answer"]
            record["answer_note"] = NONE_NOTE if obj["answer"] == "None" else EMPTY_NOTE
        out.append(record)
    return out


def _squash(text: str) -> str:
    return " ".join(text.split())


CONVERTERS: dict[str, Callable[[Files], list[Record]]] = {
    "aime24": aime24,
    "aime25": aime25,
    "amc23": amc23,
    "amc22_23": amc22_23,
    "math500": math500,
    "minerva_math": minerva_math,
    "olympiadbench": olympiadbench,
    "gsm8k": gsm8k,
    "math_train": math_train,
    "simplerl_math_l3to5": simplerl_math_l3to5,
    "gsm8k_train": gsm8k_train,
    "aime_1983_2023": aime_1983_2023,
}
