"""Dataset readers: every format on tiny files made here, field mapping, and errors that name file and place."""

from __future__ import annotations

import csv
import gzip
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from rlvr.data.readers import ReadError, read_problems, write_problems
from rlvr.data.schema import Problem

RECORDS: list[dict[str, Any]] = [
    {"id": "a", "problem": "1+1?", "answer": "2", "solution": "\\boxed{2}", "level": 1, "tags": ["easy"]},
    {"id": "b", "problem": "Half of 5?", "answer": 2.5, "source": "toy", "meta": {"hard": False}},
    {"id": "c", "problem": "Big?", "answer": 10**20, "type": "Algebra"},
]
EXPECTED = [
    Problem("a", "1+1?", "2", solution="\\boxed{2}", level=1, extra={"tags": ["easy"]}),
    Problem("b", "Half of 5?", "2.5", source="toy", extra={"meta": {"hard": False}}),
    Problem("c", "Big?", "100000000000000000000", type="Algebra"),
]


def jsonl(path: Path, records: list[Any], gz: bool = False) -> Path:
    text = "".join(json.dumps(r) + "\n" for r in records).encode()
    path.write_bytes(gzip.compress(text) if gz else text)
    return path


def write_csv(path: Path, rows: list[list[str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows(rows)
    return path


# --- formats ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["x.jsonl", "x.jsonl.gz"])
def test_jsonl_and_gzip(tmp_path: Path, name: str) -> None:
    path = jsonl(tmp_path / name, RECORDS, gz=name.endswith(".gz"))
    assert read_problems(path) == EXPECTED


@pytest.mark.parametrize(
    "data",
    [RECORDS, {"version": 2, "meta": {"n": 3}, "data": RECORDS}, {r["id"]: r for r in RECORDS}],
    ids=["list", "wrapper", "keyed"],
)
def test_json_shapes(tmp_path: Path, data: Any) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    assert read_problems(path) == EXPECTED


def test_json_keyed_by_id_takes_the_key_as_id(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text(json.dumps({"p7": {"problem": "q", "answer": 1}}), encoding="utf-8")
    assert read_problems(path) == [Problem("p7", "q", "1")]


def test_json_lines_under_a_json_name(tmp_path: Path) -> None:
    assert read_problems(jsonl(tmp_path / "x.json", RECORDS)) == EXPECTED  # what datasets' to_json writes


def test_csv(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "x.csv",
        [
            ["id", "problem", "answer", "level", "note"],
            ["1", "Two\nlines?", "27", "Level 3", ""],
            ["2", "q", "x^2", "", "kept"],
        ],
    )
    assert read_problems(path) == [
        Problem("1", "Two\nlines?", "27", level=3),  # an empty cell is an absent field
        Problem("2", "q", "x^2", extra={"note": "kept"}),
    ]


def test_csv_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["problem", "answer"], ["Two\nlines", "1"], ["q", ""]])
    with pytest.raises(ReadError, match=r"x\.csv:4: no usable answer"):
        read_problems(path)
    assert [p.id for p in read_problems(path, require_answer=False)] == ["2", "4"]


def test_parquet_round_trip(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "x.parquet"
    write_problems(EXPECTED, path)
    assert read_problems(path) == EXPECTED  # a column one record lacks reads back as absent, not None


def test_parquet_written_by_pyarrow(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"question": ["q0", "q1"], "final_answer": [["5"], ["7", "8"]], "idx": [10, 11]})
    pq.write_table(table, tmp_path / "olympiad.parquet")
    fields = {"problem": "question", "answer": "final_answer.0", "id": "idx"}
    assert read_problems(tmp_path / "olympiad.parquet", fields=fields) == [
        Problem("10", "q0", "5", extra={"final_answer": ["5"]}),
        Problem("11", "q1", "7", extra={"final_answer": ["7", "8"]}),
    ]


def _save_to_disk_by_hand(directory: Path, rows: list[dict[str, Any]]) -> None:
    """What datasets' save_to_disk leaves: IPC-stream shards named in state.json (plus a stray cache file)."""
    pa = pytest.importorskip("pyarrow")
    directory.mkdir()
    shards = [rows[:2], rows[2:]]
    for k, shard in enumerate(shards):
        table = pa.Table.from_pylist(shard, schema=pa.Table.from_pylist(rows).schema)
        sink = pa.OSFile(str(directory / f"data-0000{k}-of-00002.arrow"), "wb")
        with sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
    (directory / "cache-123.arrow").write_bytes(b"not read")
    files = [{"filename": f"data-0000{k}-of-00002.arrow"} for k in range(len(shards))]
    (directory / "state.json").write_text(json.dumps({"_data_files": files}), encoding="utf-8")
    (directory / "dataset_info.json").write_text("{}", encoding="utf-8")


def test_datasets_directory_read_with_pyarrow(tmp_path: Path) -> None:
    rows = [{"q": f"q{i}", "a": i} for i in range(3)]
    _save_to_disk_by_hand(tmp_path / "ds", rows)
    problems = read_problems(tmp_path / "ds", fields={"problem": "q", "answer": "a"})
    assert problems == [Problem(str(i), f"q{i}", str(i)) for i in range(3)]


def test_datasets_save_to_disk(tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_list([RECORDS[0], {**RECORDS[0], "id": "z"}])
    ds.save_to_disk(str(tmp_path / "ds"), num_shards=2)
    problems = read_problems(tmp_path / "ds")
    assert [p.to_dict() for p in problems] == datasets.load_from_disk(str(tmp_path / "ds")).to_list()

    datasets.DatasetDict({"train": ds, "test": ds}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(ReadError, match=r"dd: a DatasetDict with splits train, test; pass one split"):
        read_problems(tmp_path / "dd")
    assert len(read_problems(tmp_path / "dd" / "test")) == 2


def test_format_overrides_the_name(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "x.txt", RECORDS, gz=True)
    assert read_problems(path, format="jsonl") == EXPECTED


# --- field mapping ----------------------------------------------------------------------------------------------


def test_field_mapping_dotted_and_indexed(tmp_path: Path) -> None:
    record = {"idx": 3, "question": "q", "final_answer": ["$5$", "6"], "meta": {"sol": ["s1", "s2"]}, "x": 1}
    fields = {"id": "idx", "problem": "question", "answer": "final_answer.-1", "solution": "meta.sol.0"}
    (problem,) = read_problems(jsonl(tmp_path / "x.jsonl", [record]), fields=fields)
    # renamed fields are consumed; a field only partly taken (a list item) stays in extra
    assert problem == Problem(
        "3", "q", "6", solution="s1", extra={"final_answer": ["$5$", "6"], "meta": record["meta"], "x": 1}
    )


def test_a_key_with_a_dot_is_matched_whole(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "x.jsonl", [{"problem": "q", "answer.text": "4", "answer": {"text": "5"}}])
    assert read_problems(path, fields={"answer": "answer.text"})[0].answer == "4"


def test_a_renamed_source_field_does_not_fill_its_schema_namesake(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "gsm8k.jsonl", [{"question": "q", "answer": "3 + 4 = 7\n#### 7"}])
    (problem,) = read_problems(
        path, fields={"problem": "question", "solution": "answer"}, require_answer=False
    )
    assert problem == Problem("1", "q", "", solution="3 + 4 = 7\n#### 7")


def test_missing_ids_are_line_or_record_numbers(tmp_path: Path) -> None:
    records = [{"problem": "p", "answer": "1"}, {"problem": "q", "answer": "2"}]
    path = tmp_path / "x.jsonl"
    path.write_text("\n" + json.dumps(records[0]) + "\n" + json.dumps(records[1]) + "\n", encoding="utf-8")
    assert [p.id for p in read_problems(path)] == ["2", "3"]  # 1-based lines, blank lines counted
    (tmp_path / "x.json").write_text(json.dumps(records), encoding="utf-8")
    assert [p.id for p in read_problems(tmp_path / "x.json")] == ["0", "1"]  # 0-based records


def test_require_answer_false_and_source(tmp_path: Path) -> None:
    records = [
        {"id": 1, "problem": "p", "solution": "\\boxed{3}"},
        {"id": 2, "problem": "q", "answer": " "},
        {"id": 3, "problem": "r", "answer": 4, "source": "own"},
    ]
    problems = read_problems(jsonl(tmp_path / "x.jsonl", records), require_answer=False, source="mine")
    assert [(p.answer, p.source) for p in problems] == [("", "mine"), ("", "mine"), ("4", "own")]
    with pytest.raises(ReadError, match=r"x\.jsonl:1: no usable answer"):
        read_problems(tmp_path / "x.jsonl")


def test_mapped_answer_that_does_not_resolve(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "x.jsonl", [{"question": "q", "final_answer": []}])
    fields = {"problem": "question", "answer": "final_answer.0"}
    with pytest.raises(
        ReadError,
        match=r"x\.jsonl:1: missing field 'final_answer\.0' \(mapped to 'answer'\): index 0 is out of range",
    ):
        read_problems(path, fields=fields)
    assert read_problems(path, fields=fields, require_answer=False)[0].answer == ""


def test_unknown_schema_field_in_mapping(tmp_path: Path) -> None:
    with pytest.raises(ReadError, match=r"fields: 'anwser' is not a schema field"):
        read_problems(jsonl(tmp_path / "x.jsonl", RECORDS), fields={"anwser": "a"})


# --- errors -----------------------------------------------------------------------------------------------------


def test_bad_json_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text(json.dumps(RECORDS[0]) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(ReadError, match=r"x\.jsonl:2: invalid JSON"):
        read_problems(path)
    path = jsonl(tmp_path / "y.jsonl.gz", [RECORDS[0], [1, 2]], gz=True)
    with pytest.raises(ReadError, match=r"y\.jsonl\.gz:2: expected a JSON object, got list"):
        read_problems(path)


def test_bad_json_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('[\n{"id": 1,\n "problem": }]', encoding="utf-8")
    with pytest.raises(ReadError, match=r"x\.json:3: invalid JSON"):
        read_problems(path)
    path.write_text(json.dumps([RECORDS[0], "text"]), encoding="utf-8")
    with pytest.raises(ReadError, match=r"x\.json: record 1: expected a JSON object, got str"):
        read_problems(path)
    path.write_text(json.dumps({"a": [{"id": 1}], "b": [{"id": 2}]}), encoding="utf-8")
    with pytest.raises(ReadError, match=r"x\.json: expected a list of objects.*'a', 'b'"):
        read_problems(path)


def test_missing_mapped_field(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "x.jsonl", [{"question": "q", "answer": "1"}, {"answer": "2"}])
    with pytest.raises(ReadError, match=r"x\.jsonl:2: missing field 'question' \(mapped to 'problem'\)"):
        read_problems(path, fields={"problem": "question"})


def test_missing_and_wrong_typed_fields(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "x.jsonl", [RECORDS[0], {"id": "z", "answer": "1"}])
    with pytest.raises(ReadError, match=r"x\.jsonl:2: missing field 'problem'"):
        read_problems(path)
    path = jsonl(tmp_path / "y.jsonl", [{"id": 1, "q": "p", "answer": True}])
    with pytest.raises(ReadError, match=r"y\.jsonl:1: field 'answer' must be a string or a number, got bool"):
        read_problems(path, fields={"problem": "q"})
    path = jsonl(tmp_path / "z.jsonl", [{"id": 1, "q": ["not", "text"], "answer": "1"}])
    with pytest.raises(ReadError, match=r"z\.jsonl:1: field 'problem' .* \(source field 'q'\)"):
        read_problems(path, fields={"problem": "q"})


def test_wrong_type_in_a_columnar_file_names_the_record(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"problem": ["p", "q"], "answer": [1.5, None]}), tmp_path / "x.parquet")
    with pytest.raises(ReadError, match=r"x\.parquet: record 1: no usable answer"):
        read_problems(tmp_path / "x.parquet")


@pytest.mark.parametrize("name", ["x.jsonl", "x.json", "x.csv", "x.jsonl.gz"])
def test_empty_file(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(gzip.compress(b"\n") if name.endswith(".gz") else b"[]" if name == "x.json" else b"")
    with pytest.raises(ReadError, match=rf"{name.replace('.', '[.]')}: no records"):
        read_problems(path)


def test_unknown_file_type_and_format(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("1+1=2\n", encoding="utf-8")
    with pytest.raises(ReadError, match=r"x\.txt: unknown file type; supported: \.jsonl.*\.parquet"):
        read_problems(path)
    with pytest.raises(ReadError, match=r"x\.txt: unknown format 'yaml'; formats: jsonl, json"):
        read_problems(path, format="yaml")
    with pytest.raises(ReadError, match=r"nope\.jsonl: no such file"):
        read_problems(tmp_path / "nope.jsonl")
    (tmp_path / "dir").mkdir()
    with pytest.raises(ReadError, match=r"dir: a directory, but not one written by datasets"):
        read_problems(tmp_path / "dir")


def test_without_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # makes `import pyarrow` fail
    (tmp_path / "x.parquet").write_bytes(b"PAR1")
    with pytest.raises(ReadError, match=r"x\.parquet: reading parquet .* needs pyarrow: pip install pyarrow"):
        read_problems(tmp_path / "x.parquet")
    with pytest.raises(ValueError, match=r"writing parquet needs pyarrow"):
        write_problems(EXPECTED, tmp_path / "y.parquet")


def test_not_a_parquet_file(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "x.parquet"
    path.write_text("id,problem\n", encoding="utf-8")
    with pytest.raises(ReadError, match=r"x\.parquet: not a readable parquet file"):
        read_problems(path)


def test_duplicate_ids(tmp_path: Path) -> None:
    path = jsonl(tmp_path / "x.jsonl", [RECORDS[0], RECORDS[1], {**RECORDS[2], "id": "a"}])
    with pytest.raises(ReadError, match=r"x\.jsonl:3: duplicate id 'a' \(first at line 1\)"):
        read_problems(path)
    path = jsonl(tmp_path / "y.jsonl", [{"id": 5, "problem": "p", "answer": "1"}, {**RECORDS[0], "id": "5"}])
    with pytest.raises(ReadError, match=r"y\.jsonl:2: duplicate id '5'"):
        read_problems(path)  # ids are text: 5 and "5" are the same id


def test_csv_errors(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "x.csv", [["problem", "answer"], ["p", "1", "extra"]])
    with pytest.raises(ReadError, match=r"x\.csv:2: 3 cells, but the header has 2 columns"):
        read_problems(path)
    path = write_csv(tmp_path / "y.csv", [["problem", "problem"], ["p", "1"]])
    with pytest.raises(ReadError, match=r"y\.csv:1: duplicate column 'problem'"):
        read_problems(path)
    path = tmp_path / "z.csv"
    path.write_bytes(b"problem,answer\np,1\nq,\xff\n")
    with pytest.raises(ReadError, match=r"z\.csv:3: not UTF-8"):
        read_problems(path)


# --- writing ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz"])
def test_write_round_trip(tmp_path: Path, name: str) -> None:
    write_problems(EXPECTED, tmp_path / name)
    assert read_problems(tmp_path / name) == EXPECTED


def test_write_gzip_is_deterministic(tmp_path: Path) -> None:
    write_problems(EXPECTED, tmp_path / "a.jsonl.gz")
    write_problems(EXPECTED, tmp_path / "b.jsonl.gz")
    assert (tmp_path / "a.jsonl.gz").read_bytes() == (tmp_path / "b.jsonl.gz").read_bytes()


@pytest.mark.parametrize("name", ["out.jsonl", "out.jsonl.gz", "out.parquet"])
def test_write_failure_leaves_the_old_file(tmp_path: Path, name: str) -> None:
    if name.endswith(".parquet"):
        pytest.importorskip("pyarrow")
    path = tmp_path / name
    write_problems(EXPECTED[:1], path)
    before = path.read_bytes()
    bad = [*EXPECTED, Problem("d", "p", "1", extra={"handle": object()})]  # fails after three good records
    with pytest.raises(ValueError, match=r"'d' cannot be written|'handle' cannot be written"):
        write_problems(bad, path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # no temporary file left
    with pytest.raises(ValueError, match=r"x\.csv: cannot write"):
        write_problems(EXPECTED, tmp_path / "x.csv")
    assert not (tmp_path / "x.csv").exists()


def test_write_failure_leaves_no_new_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'d' cannot be written as JSON"):
        write_problems([*EXPECTED, Problem("d", "p", "1", extra={"x": {1, 2}})], tmp_path / "new.jsonl")
    assert list(tmp_path.iterdir()) == []
