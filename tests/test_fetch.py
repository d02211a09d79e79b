"""rlvr.data.fetch offline: converters on a few hand-written upstream lines, the download path against a local HTTP
server (verified, count differs, checksum differs, failed download), and the one-sentence network errors."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import json
import socket
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from rlvr.data.convert import CONVERTERS, convert, to_jsonl
from rlvr.data.fetch import FetchError, fetch, unverified_path
from rlvr.data.registry import REGISTRY, file_digest, load_user_datasets
from rlvr.data.upstream import MATH_DIR, SOURCES, last_boxed, repair_escapes

GSM8K = REGISTRY["gsm8k"]
GSM8K_PATH = "grade_school_math/data/test.jsonl"
GSM8K_UPSTREAM = (
    b'{"question": "Ann has 2 apples and buys 1,000 more. How many now?", '
    b'"answer": "2 + 1000 = <<2+1000=1002>>1002\\n#### 1,002"}\n'
    b'{"question": "What is 3\\u00d74?", "answer": "3*4=12\\n#### 12"}\n'
)
GSM8K_RECORDS = [
    {
        "id": "gsm8k-test-0", "problem": "Ann has 2 apples and buys 1,000 more. How many now?", "answer": "1,002",
        "answer_numeric": "1002", "solution": "2 + 1000 = <<2+1000=1002>>1002\n#### 1,002", "source": "GSM8K test",
    },
    {
        "id": "gsm8k-test-1", "problem": "What is 3×4?", "answer": "12", "answer_numeric": "12",
        "solution": "3*4=12\n#### 12", "source": "GSM8K test",
    },
]  # fmt: skip
GSM8K_JSONL = to_jsonl(GSM8K_RECORDS)


# --- converters on synthetic upstream bytes ---


def test_gsm8k_converter_and_serialisation():
    assert convert("gsm8k", {GSM8K_PATH: GSM8K_UPSTREAM}) == GSM8K_RECORDS
    # the reference files: ensure_ascii=False, default separators, key order kept, one record per "\n" line
    assert GSM8K_JSONL.decode().splitlines()[1] == (
        '{"id": "gsm8k-test-1", "problem": "What is 3×4?", "answer": "12", "answer_numeric": "12", '
        '"solution": "3*4=12\\n#### 12", "source": "GSM8K test"}'
    )
    assert to_jsonl([{"problem": "a\u2028b"}]) == b'{"problem": "a\\u2028b"}\n'


def test_amc_answers_are_floats_upstream_and_ids_come_from_the_url():
    url = "https://artofproblemsolving.com/wiki/index.php/2023_AMC_12B_Problems/Problem_7"
    line = json.dumps({"id": 3, "problem": "P?", "answer": 27.0, "url": url, "question": "P?"})
    [record] = convert("amc23", {SOURCES["amc23"][0].paths[0]: line.encode()})
    assert record == {
        "id": "amc23-12B-7", "problem": "P?", "answer": "27", "source": "AMC 2023 12B", "url": url, "orig_id": "3",
    }  # fmt: skip


def _math_file(problem: str, solution: str, level: str = "Level 3") -> bytes:
    return json.dumps({"problem": problem, "level": level, "type": "Algebra", "solution": solution}).encode()


MATH_FILES = {
    f"{MATH_DIR}/train/algebra/10.json": _math_file("Ten?", "So $\\boxed 10$."),
    # `\textbf` whose backslash a JSON writer turned into a tab; the tab before `draw` is Asymptote's own
    f"{MATH_DIR}/train/algebra/2.json": _math_file(
        "\textbf{(A)} 2 [asy]\tdraw(A);[/asy]", "$\\boxed{\\frac{1}{2}}$"
    ),
    f"{MATH_DIR}/train/number_theory/7115.json": _math_file(
        "Primes?", "there are $\\boxed{}$ primes", "Level ?"
    ),
    f"{MATH_DIR}/test/algebra/1.json": _math_file("Test split", "$\\boxed{1}$"),
}


def test_math_train_converter_orders_by_number_repairs_escapes_and_fills_the_empty_box():
    records = convert("math_train", MATH_FILES)
    assert [r["id"] for r in records] == [
        "train/algebra/2.json", "train/algebra/10.json", "train/number_theory/7115.json",
    ]  # fmt: skip
    assert records[0] == {
        "id": "train/algebra/2.json", "problem": "\\textbf{(A)} 2 [asy]\tdraw(A);[/asy]", "answer": "\\frac{1}{2}",
        "solution": "$\\boxed{\\frac{1}{2}}$", "level": 3, "type": "Algebra", "source": "MATH",
    }  # fmt: skip
    assert records[1]["answer"] == "10"
    assert records[2]["answer"] == "0" and records[2]["level"] is None and "answer_note" in records[2]


def test_last_boxed_and_repair_escapes():
    assert last_boxed("$\\boxed{1}$ then $\\fbox{\\{a, b\\}}$") == "\\{a, b\\}"
    assert last_boxed("$\\boxed{x^{2}}$ and $\\boxed{\\frac{a}{b}}.$") == "\\frac{a}{b}"
    assert last_boxed("no box") is None
    assert repair_escapes("\x0crac{1}{2} \x08oxed{3}\tdraw") == ("\\frac{1}{2} \\boxed{3}\tdraw", 2)


def test_every_registered_set_has_a_converter_reading_the_pinned_commit():
    for name, spec in REGISTRY.items():
        assert name in CONVERTERS
        assert (spec.source.repo, spec.source.commit) in {(up.repo, up.commit) for up in SOURCES[name]}


def test_missing_upstream_file_is_named():
    with pytest.raises(ValueError, match=r"missing: grade_school_math/data/test\.jsonl"):
        convert("gsm8k", {})


# --- the download path against a local server ---


@pytest.fixture
def server() -> Iterator[tuple[str, dict[str, bytes]]]:
    """A base URL on 127.0.0.1 serving `routes` (URL path -> body); anything else is a 404."""
    routes: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = routes.get(self.path)
            self.send_response(200 if body is not None else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", routes
    httpd.shutdown()
    httpd.server_close()


def _route(name: str, path: str) -> str:
    up = next(up for up in SOURCES[name] if path in up.paths)
    return f"/{up.repo}/{up.commit}/{path}"


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_fetch_verified_writes_the_file_the_registry_reads(server, tmp_path, monkeypatch):
    base, routes = server
    routes[_route("gsm8k", GSM8K_PATH)] = GSM8K_UPSTREAM
    spec = dataclasses.replace(GSM8K, records=2, sha256=hashlib.sha256(GSM8K_JSONL).hexdigest())
    unverified_path(tmp_path / spec.file).parent.mkdir(parents=True)
    unverified_path(tmp_path / spec.file).write_bytes(b"a stale failed attempt\n")
    monkeypatch.setenv("RLVR_FETCH_BASE_URL", base)
    result = fetch(spec, tmp_path)
    assert result.ok and result.state == "verified" and result.path == tmp_path / "eval/gsm8k_test.jsonl"
    assert result.path.read_bytes() == GSM8K_JSONL
    assert file_digest(result.path) == (spec.sha256, 2)
    assert _files(tmp_path) == ["eval/gsm8k_test.jsonl"]
    routes.clear()  # a verified copy is not downloaded again
    assert fetch(spec, tmp_path).ok


def test_fetch_count_differs_keeps_the_file_under_an_unverified_name(server, tmp_path):
    base, routes = server
    routes[_route("gsm8k", GSM8K_PATH)] = GSM8K_UPSTREAM
    result = fetch(GSM8K, tmp_path, base_url=base)
    assert not result.ok
    assert result.state == "count differs: 2 records, expected 1319"
    assert "unverified" in str(result) and "count differs" in str(result)
    assert _files(tmp_path) == ["eval/gsm8k_test.unverified.jsonl"]


def test_fetch_checksum_differs(server, tmp_path):
    base, routes = server
    routes[_route("gsm8k", GSM8K_PATH)] = GSM8K_UPSTREAM
    result = fetch(dataclasses.replace(GSM8K, records=2), tmp_path, base_url=base)
    assert result.state == "checksum differs"
    assert result.path == tmp_path / "eval/gsm8k_test.unverified.jsonl"
    assert not (tmp_path / GSM8K.file).exists()


def test_fetch_from_a_repository_archive_writes_deterministic_gzip(server, tmp_path):
    base, routes = server
    up = SOURCES["math_train"][0]
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        for path, body in {**MATH_FILES, "README.md": b"not MATH"}.items():
            info = tarfile.TarInfo(f"agents-{up.commit}/{path}")
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    routes[f"/{up.repo}/tar.gz/{up.commit}"] = archive.getvalue()
    expected = to_jsonl(convert("math_train", MATH_FILES))
    spec = dataclasses.replace(REGISTRY["math_train"], records=3, sha256=hashlib.sha256(expected).hexdigest())
    result = fetch(spec, tmp_path, base_url=base)
    assert result.ok and result.path.name == "math_train.jsonl.gz"
    assert gzip.decompress(result.path.read_bytes()) == expected
    assert result.path.read_bytes()[4:8] == b"\0\0\0\0"  # no timestamp in the gzip header
    assert file_digest(result.path) == (spec.sha256, 3)


def test_failed_download_leaves_no_file(server, tmp_path):
    base, routes = server
    qwen, deepscaler = SOURCES["minerva_math"]
    routes[_route("minerva_math", qwen.paths[0])] = (
        b'{"problem": "p", "solution": "\\\\boxed{1}", "type": "t", "idx": 0}\n'
    )
    with pytest.raises(FetchError, match=r"HTTP 404") as err:
        fetch(REGISTRY["minerva_math"], tmp_path, base_url=base)
    assert f"{base}/{deepscaler.repo}/{deepscaler.commit}/{deepscaler.paths[0]}" in str(err.value)
    assert _files(tmp_path) == []


# --- errors ---


def test_connection_refused_is_one_sentence_naming_the_url(tmp_path):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(FetchError) as err:
        fetch(GSM8K, tmp_path, base_url=f"http://127.0.0.1:{port}", timeout=5)
    message = str(err.value)
    assert message.startswith(f"could not download http://127.0.0.1:{port}/openai/grade-school-math/")
    assert "refused" in message.lower() and "\n" not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__  # no chained traceback
    assert _files(tmp_path) == []


def test_sets_that_cannot_be_fetched_say_why(tmp_path):
    with pytest.raises(FetchError, match="no automatic converter"):
        fetch(dataclasses.replace(GSM8K, name="my_new_set"), tmp_path)
    with pytest.raises(FetchError, match="the registry pins"):
        fetch(dataclasses.replace(GSM8K, source=dataclasses.replace(GSM8K.source, commit="0" * 40)), tmp_path)
    config = tmp_path / "datasets.yaml"
    config.write_text("datasets:\n  - {name: mine, path: mine.jsonl}\n")
    with pytest.raises(FetchError, match="nothing to fetch"):
        fetch(load_user_datasets(config)["mine"], tmp_path)
