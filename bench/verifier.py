"""Grade every labeled response with rlvr's verifier and with Math-Verify; compare speed and agreement.

    python bench/verifier.py                       # both graders, all labeled files (Math-Verify takes minutes)
    python bench/verifier.py --skip-math-verify --disagreements /tmp/rlvr_disagreements.jsonl
    python bench/verifier.py --files '*math500*' --limit 50 --json

Reads the labeled generation files under $RLVR_GRADERS_DIR (default ../shared/graders_data) and reports,
per grader: calls/s on one core over all responses and over the MATH-500 responses (targets: rlvr >= 1,000
calls/s and >= 10x Math-Verify there), agreement with the stored labels overall and per file, and agreement
with the adjudicated labels (bench/adjudication.jsonl overrides stored labels it names).

Timing: the process is pinned to one CPU; each grader makes one untimed warm-up call (imports, lazy
grammar set-up), then grades every response once, in file order, in the main thread (Math-Verify's timeouts
use SIGALRM). Only the grading call is timed: for Math-Verify that is parse(gold) + parse(response) + verify.
Math-Verify is called as its README shows: verify(parse("$" + gold + "$"), parse(response)), default configs
and timeouts; an exception counts as incorrect. Its parse cache means a gold seen before parses faster.

The last line of stdout is one JSON object with every figure (--json: stdout is only that object).
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import logging
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rlvr.eval.generations import (
    Adjudication,
    LabeledResponse,
    default_graders_dir,
    find_labeled_files,
    read_adjudication,
    read_generations,
)
from rlvr.rewards.math import verify as rlvr_verify

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_ADJUDICATION = REPO_ROOT / "bench" / "adjudication.jsonl"
WARMUP = ("So the answer is $\\boxed{\\frac{1}{2}}$.", "0.5")  # (response, gold); not part of the data set


@dataclass(frozen=True, slots=True)
class Graded:
    """One grader's verdict on one response."""

    correct: bool
    seconds: float  # wall time of the grading call alone
    error: bool  # the grader raised; counted as incorrect
    extracted: str | None = None
    reason: str = ""


GradeFn = Callable[
    [str, str], tuple[bool, str | None, str]
]  # (response, gold) -> (correct, extracted, reason)


def rlvr_grader(timeout_s: float) -> GradeFn:
    def grade(response: str, gold: str) -> tuple[bool, str | None, str]:
        v = rlvr_verify(response, gold, timeout_s=timeout_s)
        return v.correct, v.extracted, v.reason

    return grade


def math_verify_grader() -> GradeFn:
    from math_verify import parse, verify  # benchmark-only dependency: pip install rlvr[bench]

    for name in ("math_verify", "latex2sympy2_extended"):  # it logs every timeout and parse failure
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def grade(response: str, gold: str) -> tuple[bool, str | None, str]:
        answer = parse(response)
        ok = bool(verify(parse("$" + gold + "$"), answer))
        return ok, str(answer[-1]) if answer else None, "equal" if ok else "not_equal"

    return grade


def run_grader(grade: GradeFn, rows: Sequence[LabeledResponse], name: str) -> list[Graded]:
    """Grade every row once in the main thread, timing only the grading calls."""
    grade(*WARMUP)
    out = []
    t_report = time.monotonic()
    for i, row in enumerate(rows):
        t0 = time.perf_counter()
        try:
            correct, extracted, reason = grade(row.response, row.gold)
            error = False
        except Exception as e:  # a grader that raises is scored as "incorrect"
            correct, extracted, reason, error = False, None, f"exception: {type(e).__name__}", True
        out.append(Graded(correct, time.perf_counter() - t0, error, extracted, reason))
        if time.monotonic() - t_report > 10:
            print(f"  {name}: {i + 1}/{len(rows)}", file=sys.stderr, flush=True)
            t_report = time.monotonic()
    return out


def is_math500(file: str) -> bool:
    return "math500" in Path(file).name.lower()


def throughput(graded: Sequence[Graded]) -> float | None:
    total = sum(g.seconds for g in graded)
    return round(len(graded) / total, 1) if graded and total > 0 else None


def agreement(graded: Sequence[Graded], labels: Sequence[bool | None]) -> dict[str, Any]:
    pairs = [(g.correct, lab) for g, lab in zip(graded, labels, strict=True) if lab is not None]
    agree = sum(c == lab for c, lab in pairs)
    return {"labeled": len(pairs), "agree": agree, "agree_pct": _pct(agree, len(pairs))}


def summarize(
    rows: Sequence[LabeledResponse], graded: Sequence[Graded], effective: Sequence[bool | None]
) -> dict[str, Any]:
    """Speed and agreement figures of one grader over `rows`."""
    stored = [r.label for r in rows]
    ms = sorted(g.seconds * 1000 for g in graded)
    sub = [g for r, g in zip(rows, graded, strict=True) if is_math500(r.file)]
    per_file: dict[str, Any] = {}
    for file in dict.fromkeys(r.file for r in rows):
        idx = [i for i, r in enumerate(rows) if r.file == file]
        f_graded = [graded[i] for i in idx]
        f_labels = [stored[i] for i in idx]
        labeled = [lab for lab in f_labels if lab is not None]
        per_file[file] = {
            "n": len(idx),
            **agreement(f_graded, f_labels),
            "stored_acc_pct": _pct(sum(labeled), len(labeled)),
            "acc_pct": _pct(sum(g.correct for g in f_graded), len(f_graded)),
            "calls_per_s": throughput(f_graded),
        }
    adj = agreement(graded, effective)
    return {
        "n": len(graded),
        "calls_per_s": throughput(graded),
        "math500_n": len(sub),
        "math500_calls_per_s": throughput(sub),
        "latency_ms": {
            "p50": round(statistics.median(ms), 3) if ms else None,
            "p99": round(ms[min(len(ms) - 1, int(0.99 * len(ms)))], 3) if ms else None,
            "max": round(ms[-1], 3) if ms else None,
        },
        "calls_over_1s": sum(g.seconds > 1.0 for g in graded),
        "errors": sum(g.error for g in graded),
        **agreement(graded, stored),
        "agree_adjudicated": adj["agree"],
        "agree_adjudicated_pct": adj["agree_pct"],
        "per_file": per_file,
    }


def effective_labels(
    rows: Sequence[LabeledResponse], adjudication: dict[tuple[str, str], Adjudication]
) -> list[bool | None]:
    """Stored labels with adjudicated ones substituted; warns about entries that no longer match the data."""
    out: list[bool | None] = []
    for r in rows:
        a = adjudication.get((r.file, r.record_id))
        if a is not None and a.label != r.label:
            print(
                f"warning: stale adjudication {r.file} {r.record_id}: stored label is {r.label}",
                file=sys.stderr,
            )
        out.append(r.label if a is None else a.adjudicated)
    loaded = {r.file for r in rows}
    keys = {(r.file, r.record_id) for r in rows}
    unmatched = [k for k in adjudication if k[0] in loaded and k not in keys]
    for k in unmatched:
        print(f"warning: adjudication for unknown record {k}", file=sys.stderr)
    return out


def write_disagreements(
    path: Path,
    rows: Sequence[LabeledResponse],
    rlvr: Sequence[Graded],
    math_verify: Sequence[Graded] | None,
    adjudication: dict[tuple[str, str], Adjudication],
) -> int:
    """JSONL of every response where rlvr disagrees with the stored label; returns the count."""
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for i, (r, g) in enumerate(zip(rows, rlvr, strict=True)):
            if r.label is None or g.correct == r.label:
                continue
            a = adjudication.get((r.file, r.record_id))
            entry = {
                "file": r.file,
                "record_id": r.record_id,
                "label": r.label,
                "adjudicated": None if a is None else a.adjudicated,
                "rlvr_correct": g.correct,
                "rlvr_extracted": g.extracted,
                "rlvr_reason": g.reason,
                "math_verify": None if math_verify is None else math_verify[i].correct,
                "gold": r.gold,
                "harness_gold": r.harness_gold,
                "response_tail": r.response[-300:],
            }
            f.write(json.dumps(entry, ensure_ascii=False) + "\n")
            n += 1
    return n


def check_not_committable(path: Path) -> None:
    """The disagreements file quotes third-party responses: keep it outside the repo or in an ignored path."""
    resolved = path.resolve()
    if not resolved.is_relative_to(REPO_ROOT):
        return
    ignored = subprocess.run(["git", "-C", str(REPO_ROOT), "check-ignore", "-q", str(resolved)], check=False)
    if ignored.returncode != 0:
        sys.exit(f"--disagreements {path}: inside the repo and not gitignored; write it under /tmp instead")


def print_table(report: dict[str, Any]) -> None:
    graders = report["graders"]
    names = list(graders)
    head = f"{'file':<62} {'n':>5} {'stored%':>7}" + "".join(f" {n + ' agree%':>18}" for n in names)
    print(head)
    print("-" * len(head))
    for file in graders[names[0]]["per_file"]:
        first = graders[names[0]]["per_file"][file]
        cells = "".join(f" {_fmt(graders[n]['per_file'][file]['agree_pct']):>18}" for n in names)
        print(f"{_short(file):<62} {first['n']:>5} {_fmt(first['stored_acc_pct']):>7}{cells}")
    print()
    for name, g in graders.items():
        print(
            f"{name:<12} {_fmt(g['calls_per_s'])} calls/s overall, {_fmt(g['math500_calls_per_s'])} calls/s on "
            f"{g['math500_n']} MATH-500 responses; latency p50 {g['latency_ms']['p50']} ms, "
            f"p99 {g['latency_ms']['p99']} ms, max {g['latency_ms']['max']} ms; "
            f"{g['calls_over_1s']} calls over 1 s; errors {g['errors']}"
        )
        print(
            f"{'':<12} agrees with stored labels {g['agree']}/{g['labeled']} ({_fmt(g['agree_pct'])}%), "
            f"with adjudicated labels {g['agree_adjudicated']}/{g['labeled']} ({_fmt(g['agree_adjudicated_pct'])}%)"
        )
    if report["math500_speedup"] is not None:
        print(f"MATH-500 speed-up rlvr / math_verify: {report['math500_speedup']}x")
    print(f"targets: {report['targets']}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--root", type=Path, default=None, help="labeled-generations root (default $RLVR_GRADERS_DIR)"
    )
    ap.add_argument("--files", default=None, help="glob on paths relative to the root, e.g. '*math500*'")
    ap.add_argument("--limit", type=int, default=None, help="grade at most this many responses per file")
    ap.add_argument("--skip-math-verify", action="store_true", help="run only rlvr's verifier")
    ap.add_argument("--timeout", type=float, default=1.0, help="rlvr verify timeout_s per call")
    ap.add_argument("--adjudication", type=Path, default=DEFAULT_ADJUDICATION, help="label overrides (JSONL)")
    ap.add_argument(
        "--disagreements", type=Path, default=None, help="write rlvr-vs-label disagreements (JSONL)"
    )
    ap.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = ap.parse_args(argv)

    root = args.root or default_graders_dir()
    if not root.is_dir():
        sys.exit(f"graders data not found at {root} (set RLVR_GRADERS_DIR)")
    if args.disagreements is not None:
        check_not_committable(args.disagreements)
    files = [
        p
        for p in find_labeled_files(root)
        if args.files is None or fnmatch.fnmatch(p.relative_to(root).as_posix(), args.files)
    ]
    rows = [r for p in files for r in read_generations(p, root)[: args.limit]]
    if not rows:
        sys.exit(f"no labeled responses under {root} match --files {args.files!r}")
    adjudication = read_adjudication(args.adjudication)
    effective = effective_labels(rows, adjudication)
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})

    results = {"rlvr": run_grader(rlvr_grader(args.timeout), rows, "rlvr")}
    if not args.skip_math_verify:
        results["math_verify"] = run_grader(math_verify_grader(), rows, "math_verify")
    graders = {name: summarize(rows, graded, effective) for name, graded in results.items()}

    rlvr_m500 = graders["rlvr"]["math500_calls_per_s"]
    mv_m500 = graders["math_verify"]["math500_calls_per_s"] if "math_verify" in graders else None
    speedup = round(rlvr_m500 / mv_m500, 1) if rlvr_m500 and mv_m500 else None
    report: dict[str, Any] = {
        "root": str(root),
        "files": len(files),
        "n_responses": len(rows),
        "n_labeled": sum(r.label is not None for r in rows),
        "adjudicated": sum((r.file, r.record_id) in adjudication for r in rows),
        "timing": "one pinned core, main thread, one untimed warm-up call, grading calls only",
        "graders": graders,
        "math500_speedup": speedup,
        "targets": {
            "rlvr_math500_ge_1000_calls_per_s": rlvr_m500 is not None and rlvr_m500 >= 1000,
            "math500_speedup_ge_10x": None if speedup is None else speedup >= 10,
        },
    }
    if args.disagreements is not None:
        mv = results.get("math_verify")
        n = write_disagreements(args.disagreements, rows, results["rlvr"], mv, adjudication)
        report["disagreements_written"] = n
        print(f"wrote {n} rlvr disagreements to {args.disagreements}", file=sys.stderr)
    if not args.json:
        print_table(report)
    print(json.dumps(report))
    return report


def _pct(num: int, den: int) -> float | None:
    return round(100 * num / den, 2) if den else None


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _short(file: str) -> str:
    return file if len(file) <= 62 else "..." + file[-59:]


if __name__ == "__main__":
    main()
