"""The registry of benchmark and training sets: where each came from, how big it is, and how to check a local copy.

rlvr never ships these files: they belong to public repositories. An entry records the public source (repository,
commit, path), the expected record count and the sha256 of the uncompressed JSONL (a `.jsonl.gz` is checked by its
content, since gzip headers carry a timestamp). A local copy is found in `$RLVR_DATA_DIR` (laid out as
`eval/NAME.jsonl`, `train/NAME.jsonl[.gz]`) or in the download cache (`$RLVR_CACHE_DIR`, default
`~/.cache/rlvr/data`), which `rlvr data fetch` fills where a network is there.

Generated sets (`GENERATED`, e.g. the synthetic arithmetic of `synthetic.py`) have no file: their records come
from a seeded generator, and the count and sha256 are those of the JSONL the records would be written as, so
`rlvr data ls` checks them like a file (a regression check on the generator's determinism).

Users add their own sets with a YAML file (`datasets:` list of name / path / format / fields / split), see
`load_user_datasets`. `load_dataset` gives the records of any of them by name.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import yaml

from rlvr.data import word_problems
from rlvr.data.schema import Problem
from rlvr.data.synthetic import make_problems


@dataclass(frozen=True, slots=True)
class Source:
    """Where a set was taken from: a file in a public GitHub repository at a pinned commit."""

    repo: str
    commit: str
    path: str
    license: str

    @property
    def url(self) -> str:
        return f"https://raw.githubusercontent.com/{self.repo}/{self.commit}/{self.path}"


@dataclass(frozen=True, slots=True)
class DatasetSpec:
    name: str
    split: str  # "eval" or "train"
    file: str  # relative to the data directory
    records: int  # expected number of records
    sha256: str  # of the uncompressed file
    source: Source
    note: str = ""  # how the file was derived from the source, in one line
    fields: dict[str, str] = field(default_factory=dict)  # schema field -> source field, for user datasets
    format: str | None = None  # for user datasets: jsonl, json, parquet, csv, datasets
    generator: Callable[[], list[Problem]] | None = None  # a generated set's records (it has no file)
    final_form: bool = False  # answers are numbers to be written as numbers: `9 + 73` is not one (verify)


QWEN = "QwenLM/Qwen2.5-Math", "a45202bd16f1ec06f433442dc1152d0074773465", "MIT"
DEEPSCALER = "agentica-project/deepscaler", "95ef74ffee001cce89463f2d61dfdce1d03576c1", "MIT"
GSM8K = "openai/grade-school-math", "3101c7d5072418e28b9008a6636bde82a006892c", "MIT"
MATH_COPY = "aiwaves-cn/agents", "e8c4e3c2d19739d3dff59e577d1c97090cc15f59", "MIT (MATH); Apache-2.0 (repo)"


def _src(repo: tuple[str, str, str], path: str) -> Source:
    return Source(repo[0], repo[1], path, repo[2])


REGISTRY: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("aime24", "eval", "eval/aime24.jsonl", 30,
                    "6aeeb1a02db2d687b624e34e7442875b71c97925a2421c68b1f6d99350103215",
                    _src(QWEN, "evaluation/data/aime24/test.jsonl"), "AIME 2024 I+II; ids from the AoPS URL"),
        DatasetSpec("aime25", "eval", "eval/aime25.jsonl", 30,
                    "edfb23449b0ebbfbe8d35e616528e3436de379c33d7fdf8fd5e205abee152692",
                    Source("eth-sri/matharena", "96440b20d0b90bb504edb7ee43c0e1e46567569f", "data/aime", "MIT"),
                    "AIME 2025 I+II: problems/<n>.tex + answers.csv; AoPS wording from Qihoo360/Light-R1"),
        DatasetSpec("amc23", "eval", "eval/amc23.jsonl", 40,
                    "8fa9ede97489229cbc052778255f97387e4eeb7270115cbefc2d90b8c3105161",
                    _src(QWEN, "evaluation/data/amc23/test.jsonl"), "AMC 2023, 40 problems; float answers as text"),
        DatasetSpec("amc22_23", "eval", "eval/amc22_23.jsonl", 83,
                    "1b6c70c8bd1ae845c16ecf95f77cd89931376d2bc97b87988c00a2185ae24cd5",
                    _src(DEEPSCALER, "deepscaler/data/test/amc.json"), "AMC 2022+2023 (DeepScaleR's AMC)"),
        DatasetSpec("math500", "eval", "eval/math500.jsonl", 500,
                    "d0791e16ccb30eaa22fbf818f3499920d86ed931e6129324a939500fec105844",
                    Source("hkust-nlp/simpleRL-reason", "cf1c7858bfc145a27aa733e75d930d34f0d318a6",
                           "examples/simplelr_math_eval/data/math500/test.jsonl", "MIT"),
                    "MATH-500 (PRM800K test split); id = MATH unique_id"),
        DatasetSpec("minerva_math", "eval", "eval/minerva_math.jsonl", 272,
                    "63387d95a26fad7de9fe8b5e2a6d78a8d42794c62aa870f24db4ca5faa771e60",
                    _src(QWEN, "evaluation/data/minerva_math/test.jsonl"), "answer = last \\boxed{} of the solution"),
        DatasetSpec("olympiadbench", "eval", "eval/olympiadbench.jsonl", 675,
                    "5decc1976ca156583bacb4c634fd986fddc77aa8f3a12b1a7365a3d51a79b7ea",
                    _src(QWEN, "evaluation/data/olympiadbench/test.jsonl"), "OE_TO_maths_en_COMP; answer = final_answer[0]"),
        DatasetSpec("gsm8k", "eval", "eval/gsm8k_test.jsonl", 1319,
                    "d65690db10d5c66ca226ada2eac33c796e0faa567738fb9c9d99ae46f9ae6f0c",
                    _src(GSM8K, "grade_school_math/data/test.jsonl"), "answer = text after ####", final_form=True),
        DatasetSpec("math_train", "train", "train/math_train.jsonl.gz", 7500,
                    "611b2747a491aae8440d249be29d515db94713d714a6f5044f983aecf024b92f",
                    _src(MATH_COPY, "src/agents/datasets/data/math/train"), "MATH train; answer = last \\boxed{}"),
        DatasetSpec("simplerl_math_l3to5", "train", "train/simplerl_math_l3to5.jsonl.gz", 8523,
                    "3b277615d146ececeb1c98b875882d0cad51ac984d0646716a226ddbf1827ad7",
                    Source("GAIR-NLP/LIMR", "98ebf1bd54cc4539a9ac2332327ab0200bc2a88f", "data/prompts/math.8k.json",
                           "MIT (MATH)"), "SimpleRL's MATH level 3-5 set"),
        DatasetSpec("gsm8k_train", "train", "train/gsm8k_train.jsonl", 7473,
                    "7ae833ace215eb45ab24a8c22454956431deac52b299960f09b15db7b8ef57be",
                    _src(GSM8K, "grade_school_math/data/train.jsonl"), "answer = text after ####", final_form=True),
        DatasetSpec("aime_1983_2023", "train", "train/aime_1983_2023.jsonl", 975,
                    "c883242a8406a4c8d6422ada1b5bf36b08de3d9d6d388293ec5c11266280c948",
                    _src(DEEPSCALER, "deepscaler/data/train/aime.json"), "the AIME part of DeepScaleR's training set"),
    ]
}  # fmt: skip

RLVR = Source("rlvr", "", "rlvr/data/synthetic.py", "Apache-2.0")  # generated by rlvr itself
RLVR_WORDS = Source("rlvr", "", "rlvr/data/word_problems.py", "Apache-2.0")

GENERATED: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in [
        DatasetSpec("arith", "train", "", 20000,
                    "44abaf9838a93e56c385ad3cc880b5f97f2d49903f653521fc52a48b4e67b9ef", RLVR,
                    "make_problems('train', 20000, seed=0, max_digits=3)",
                    generator=partial(make_problems, "train", 20000, seed=0, max_digits=3), final_form=True),
        DatasetSpec("arith_test", "eval", "", 500,
                    "3a5578c88cf9b3b824fe84fbebd7d1af6b27fd7b4f128ae8c0be929c9c2a6b5b", RLVR,
                    "make_problems('test', 500, seed=0, max_digits=3)",
                    generator=partial(make_problems, "test", 500, seed=0, max_digits=3), final_form=True),
        DatasetSpec("words", "train", "", 20000,
                    "e4a6ce049bf4ca74d72fc8535c0946e867ed9720ac1b66bb8e41e03dabf40e14", RLVR_WORDS,
                    "word_problems.make_problems('train', 20000, seed=0)",
                    generator=partial(word_problems.make_problems, "train", 20000, seed=0), final_form=True),
        DatasetSpec("words_test", "eval", "", 500,
                    "781a5a91fac4bbff8bd1e428afa43c52a2d073a1abdbbd453be0d3370fed30db", RLVR_WORDS,
                    "word_problems.make_problems('test', 500, seed=0)",
                    generator=partial(word_problems.make_problems, "test", 500, seed=0), final_form=True),
    ]
}  # fmt: skip

# The benchmark files, which decontamination checks training sets against. Not arith_test: arith's splits are
# disjoint by construction, and equal-ignoring-digits would match every "a+b" to every other.
EVAL_SETS = tuple(name for name, spec in REGISTRY.items() if spec.split == "eval")
TRAIN_SETS = tuple(name for name, spec in REGISTRY.items() if spec.split == "train")


def data_dir() -> Path | None:
    """`$RLVR_DATA_DIR`, when set."""
    value = os.environ.get("RLVR_DATA_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    return Path(os.environ.get("RLVR_CACHE_DIR", "~/.cache/rlvr/data")).expanduser()


def local_path(spec: DatasetSpec) -> Path | None:
    """The local copy of a registered set: in $RLVR_DATA_DIR first, then in the download cache."""
    if spec.generator is not None:
        return None
    if spec.source.repo == "local":
        path = Path(spec.file)
        return path if path.exists() else None
    for root in (data_dir(), cache_dir()):
        if root is not None and (root / spec.file).exists():
            return root / spec.file
    return None


def file_digest(path: Path) -> tuple[str, int]:
    """sha256 of the uncompressed content and the number of non-blank lines."""
    digest = hashlib.sha256()
    lines = 0
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as f:
        for line in f:
            digest.update(line)
            lines += bool(line.strip())
    return digest.hexdigest(), lines


def records_digest(problems: Iterable[Problem]) -> tuple[str, int]:
    """`file_digest` of the JSONL `readers.write_problems` would write for these records, without writing it."""
    digest = hashlib.sha256()
    n = 0
    for p in problems:
        digest.update(json.dumps(p.to_dict(), ensure_ascii=False).encode("utf-8") + b"\n")
        n += 1
    return digest.hexdigest(), n


@dataclass(frozen=True, slots=True)
class Status:
    name: str
    split: str
    records: int  # expected
    source: str
    path: str | None  # the local copy, None when absent
    found_records: int | None = None
    checksum_ok: bool | None = None
    generated: bool = False  # no file: the records come from a generator

    @property
    def state(self) -> str:
        if self.path is None and not self.generated:
            return "absent"
        if self.found_records != self.records:
            return f"count differs: {self.found_records} records, expected {self.records}"
        if self.checksum_ok is False:
            return "checksum differs"
        return "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "split": self.split, "records": self.records, "source": self.source,
            "present": self.path is not None or self.generated, "path": self.path, "generated": self.generated,
            "found_records": self.found_records, "checksum_ok": self.checksum_ok, "state": self.state,
        }  # fmt: skip


def status(spec: DatasetSpec) -> Status:
    """Is the set here, with the expected count and checksum?"""
    if spec.generator is not None:
        digest, n = records_digest(spec.generator())
        source = f"generated: {spec.source.path} {spec.note}"
        return Status(
            spec.name, spec.split, spec.records, source, None, n, digest == spec.sha256, generated=True
        )
    source = f"{spec.source.repo}@{spec.source.commit[:8]}:{spec.source.path}"
    path = local_path(spec)
    if path is None:
        return Status(spec.name, spec.split, spec.records, source, None)
    if spec.source.repo == "local":  # a user's file: count its records, nothing to check it against
        from rlvr.data.readers import read_problems

        n = len(read_problems(path, fields=spec.fields or None, format=spec.format, require_answer=False))
        return Status(spec.name, spec.split, n, source, str(path), n, None)
    digest, lines = file_digest(path)
    return Status(spec.name, spec.split, spec.records, source, str(path), lines, digest == spec.sha256)


def load_user_datasets(path: str | Path) -> dict[str, DatasetSpec]:
    """Datasets a user registers in YAML:

    datasets:
      - name: my_set
        path: data/my_set.parquet          # jsonl, jsonl.gz, json, parquet, csv, or a `datasets` directory
        split: train                       # or eval (decontamination checks against every eval set)
        fields: {problem: question, answer: final_answer.0}
        final_form: true                   # answers are numbers: arithmetic left undone is wrong (default false)
    """
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f) or {}
    entries = config.get("datasets", []) if isinstance(config, dict) else None
    if not isinstance(entries, list):
        raise ValueError(f"{path}: expected a `datasets:` list")
    out: dict[str, DatasetSpec] = {}
    for k, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "name" not in entry or "path" not in entry:
            raise ValueError(f"{path}: datasets entry {k} needs at least `name` and `path`")
        file = Path(entry["path"])
        if not file.is_absolute():
            file = Path(path).parent / file
        split = entry.get("split", "train")
        if split not in ("train", "eval"):
            raise ValueError(f"{path}: datasets entry {k} ({entry['name']}): split must be train or eval")
        out[entry["name"]] = DatasetSpec(
            name=entry["name"], split=split, file=str(file), records=0, sha256="",
            source=Source("local", "", str(file), entry.get("license", "")),
            fields=dict(entry.get("fields") or {}), format=entry.get("format"),
            final_form=_flag(entry, "final_form", f"{path}: datasets entry {k} ({entry['name']})"),
        )  # fmt: skip
    return out


def _flag(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise ValueError(f"{where}: {key} must be true or false, got {value!r}")
    return value


def final_form(source: str | Path | None, user_specs: dict[str, DatasetSpec] | None = None) -> bool:
    """Whether a set's answers must be written as numbers (`verify(final_form=True)`): its registry flag for a
    registered, generated or user-registered set; False for a problem file, which says nothing about it."""
    if source is None or Path(source).exists():
        return False
    specs = {**REGISTRY, **GENERATED, **(user_specs or {})}
    spec = specs.get(str(source))
    return spec is not None and spec.final_form


def resolve(name: str, extra: dict[str, DatasetSpec] | None = None) -> DatasetSpec:
    specs = {**REGISTRY, **GENERATED, **(extra or {})}
    if name not in specs:
        raise ValueError(f"unknown dataset {name!r}; registered: {', '.join(sorted(specs))}")
    return specs[name]


def load_problems(
    source: str | Path, user_specs: dict[str, DatasetSpec] | None = None, *, require_answer: bool = True
) -> list[Problem]:
    """Problems of a problem file, or of a registered / user-registered set by name (what every stage's `data`
    field and the eval and sample commands accept)."""
    from rlvr.data.readers import read_problems

    if Path(source).exists():
        return read_problems(source, require_answer=require_answer)
    if "/" in str(source) or str(source).endswith((".jsonl", ".json", ".csv", ".parquet", ".gz")):
        raise FileNotFoundError(f"{source}: no such file")
    return load_dataset(str(source), user_specs)


def load_dataset(name: str, user_specs: dict[str, DatasetSpec] | None = None) -> list[Problem]:
    """The records of a registered, generated or user-registered set: generated, or read from its local copy."""
    from rlvr.data.readers import read_problems

    spec = resolve(name, user_specs)
    if spec.generator is not None:
        return spec.generator()
    path = local_path(spec)
    if path is None:
        raise ValueError(
            f"dataset {name!r} is not available locally: set RLVR_DATA_DIR to a directory holding {spec.file}, "
            f"or run `rlvr data fetch {name}` (source: {spec.source.url})"
        )
    return read_problems(
        path, fields=spec.fields or None, format=spec.format, require_answer=False, source=name
    )
