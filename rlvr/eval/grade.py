"""Re-grade saved generation files with rlvr's verifier: what `rlvr grade` runs (`grade_files`, and its arguments).

For each file (any format `rlvr.eval.generations` reads) it reports rlvr's accuracy next to the accuracy the file
stores: the mean of its per-sample labels, and the published summary where the harness wrote one. With an
adjudication table (hand re-judgements of disputed samples) it also reports the accuracy under the adjudicated
labels and how many of the rlvr/stored disagreements the table accounts for, so that a gap between rlvr and a
file's authors can be traced to the samples where one of the two graders is wrong.

It grades through a `verifier_pool`, so every response has a hard time limit. It writes nothing.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rlvr.eval.generations import (
    Adjudication,
    LabeledResponse,
    count_records,
    default_graders_dir,
    detect_format,
    published_accuracy,
    read_adjudication,
    read_generations,
)
from rlvr.rewards.grade_file import add_pool_arguments
from rlvr.rewards.pool import DEFAULT_TIMEOUT_S, SLACK_S, verifier_pool

HELP = "re-grade saved generation files with rlvr's verifier and compare with their stored labels"
EPILOG = f"""\
Formats (detected from each file's first record): the Qwen2.5-Math evaluation harness and its SkyThought fork
(JSONL with idx/answer/code/score), SkyThought tools (a JSON object keyed by problem), GAIR's AIME-Preview harness,
plain JSONL of {{"response", "answer"[, "label", "id"]}}, and rlvr's own eval samples (JSONL of problem_id,
sample_index, text, answer[, correct]). Responses are graded against the raw gold answer.

Per file: records (problems, or lines for one-response-per-line formats), samples (responses), rlvr accuracy
(pass@1: mean over all samples), stored accuracy (mean of the file's labels; "-" when it has none), published (the
harness's <stem>_metrics.json "acc", when present) and diff = rlvr - stored in points. With --adjudicated, also the
accuracy under the adjudicated labels (stored labels with the table's verdicts substituted) and how many of the
samples where rlvr and the stored label disagree the table covers ("explained").

File names match adjudication entries relative to --root (default: $RLVR_GRADERS_DIR or ../shared/graders_data)
when the file lies under it. Each response gets --timeout seconds; a worker still busy {SLACK_S:g} s after that is
killed and the response counted incorrect. A malformed file stops the run with exit code 2, naming file and line.
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.epilog = EPILOG
    parser.add_argument("files", nargs="+", metavar="FILE", type=Path, help="generation files to re-grade")
    parser.add_argument(
        "--adjudicated",
        metavar="ADJ.jsonl",
        type=Path,
        default=None,
        help="hand-adjudicated labels (e.g. bench/adjudication.jsonl) to report accuracy under",
    )
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="directory file names are taken relative to (default: the graders data directory)",
    )
    add_pool_arguments(parser)
    parser.add_argument(
        "--json", action="store_true", help="print the results as one JSON object (the only thing on stdout)"
    )


def run(args: argparse.Namespace) -> int:
    if args.adjudicated is not None and not args.adjudicated.is_file():
        raise FileNotFoundError(f"no adjudication file {args.adjudicated}")  # read_adjudication allows none
    adjudication = read_adjudication(args.adjudicated) if args.adjudicated is not None else None
    root = args.root if args.root is not None else default_graders_dir()
    grades = grade_files(
        args.files, root=root, adjudication=adjudication, workers=args.workers, timeout_s=args.timeout
    )
    if args.json:
        print(json.dumps({"files": [g.to_dict() for g in grades], "total": _total(grades)}))
    else:
        print(format_report(grades, adjudicated=adjudication is not None))
    return 0


@dataclass(frozen=True, slots=True)
class FileGrade:
    """rlvr's grading of one file next to what the file stores. Accuracies are fractions in [0, 1]."""

    file: str  # relative to the root when under it, else as given
    format: str
    records: int  # problems (multi-sample formats) or lines
    samples: int  # responses graded
    correct: int  # responses rlvr grades correct
    rlvr: float  # correct / samples: pass@1
    stored: float | None  # mean of the stored labels; None when the file has none
    published: float | None  # the harness's own summary accuracy, when it wrote one
    adjudicated: float | None  # stored labels with the adjudicated verdicts substituted; None without a table
    disagreements: int  # samples where rlvr's verdict differs from the stored label
    explained: int  # of those, the ones the adjudication table covers
    timeouts: int  # responses whose grading ran out of time (counted incorrect)

    @property
    def diff_points(self) -> float | None:
        """rlvr − stored, in percentage points."""
        return None if self.stored is None else 100 * (self.rlvr - self.stored)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "diff_points": self.diff_points}


def grade_files(
    paths: Sequence[Path],
    *,
    root: Path | None = None,
    adjudication: dict[tuple[str, str], Adjudication] | None = None,
    workers: int | None = None,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[FileGrade]:
    """Grade every response of every file with one pool of workers; one `FileGrade` per file, in order.

    Every file is read (and checked) before grading starts, so a malformed one fails fast. An adjudication entry
    whose stored label no longer matches the file is reported on stderr and still applied.
    """
    loaded = [(Path(p), _read(Path(p), root)) for p in paths]
    out = []
    with verifier_pool(workers, timeout_s=timeout_s) as pool:
        for path, rows in loaded:
            verdicts = pool.grade([(r.response, r.gold) for r in rows])
            out.append(
                _compare(
                    path,
                    rows,
                    [v.correct for v in verdicts],
                    timeouts=sum(v.reason.startswith("timeout") for v in verdicts),
                    adjudication=adjudication,
                )
            )
    return out


def format_report(grades: Sequence[FileGrade], *, adjudicated: bool = False) -> str:
    """A fixed-width table, one line per file and a total line; accuracies in percent."""
    head = ["records", "samples", "rlvr", "stored", "diff", "published"]
    if adjudicated:
        head += ["adjudicated", "disagree", "explained"]
    width = max([len("file"), *(len(g.file) for g in grades)])
    lines = [f"{'file':<{width}}  " + "  ".join(f"{h:>11}" for h in head)]
    for g in [*grades, None] if len(grades) > 1 else grades:
        row = _total(grades) if g is None else g.to_dict()
        cells = [
            str(row["records"]),
            str(row["samples"]),
            _percent(row["rlvr"]),
            _percent(row["stored"]),
            "-" if row["diff_points"] is None else f"{row['diff_points']:+.2f}",
            _percent(row["published"]),
        ]
        if adjudicated:
            cells += [_percent(row["adjudicated"]), str(row["disagreements"]), str(row["explained"])]
        lines.append(f"{row['file']:<{width}}  " + "  ".join(f"{c:>11}" for c in cells))
    timeouts = sum(g.timeouts for g in grades)
    if timeouts:
        lines.append(f"{timeouts} responses ran out of grading time and count as incorrect")
    return "\n".join(lines)


def _compare(
    path: Path,
    rows: list[LabeledResponse],
    correct: list[bool],
    *,
    timeouts: int,
    adjudication: dict[tuple[str, str], Adjudication] | None,
) -> FileGrade:
    labels = [r.label for r in rows]
    has_labels = bool(rows) and all(label is not None for label in labels)
    disagreements = explained = 0
    adjudicated_right = 0
    for row, ok in zip(rows, correct, strict=True):
        entry = adjudication.get((row.file, row.record_id)) if adjudication is not None else None
        if entry is not None and entry.label != row.label:
            print(
                f"warning: adjudication of {row.file} {row.record_id} expects stored label {entry.label}, "
                f"the file has {row.label}",
                file=sys.stderr,
            )
        if row.label is not None and ok != row.label:
            disagreements += 1
            explained += entry is not None
        adjudicated_right += entry.adjudicated if entry is not None else bool(row.label)
    samples = len(rows)
    return FileGrade(
        file=rows[0].file if rows else str(path),
        format=detect_format(path),
        records=count_records(path),
        samples=samples,
        correct=sum(correct),
        rlvr=sum(correct) / samples if samples else 0.0,
        stored=sum(bool(x) for x in labels) / samples if has_labels else None,
        published=published_accuracy(path),
        adjudicated=adjudicated_right / samples if has_labels and adjudication is not None else None,
        disagreements=disagreements,
        explained=explained,
        timeouts=timeouts,
    )


def _total(grades: Sequence[FileGrade]) -> dict[str, Any]:
    """Sums over the files; accuracies over all samples, or None unless every file has them."""
    samples = sum(g.samples for g in grades)

    def pooled(field: str) -> float | None:
        values = [getattr(g, field) for g in grades]
        if not samples or any(v is None for v in values):
            return None
        return sum(v * g.samples for v, g in zip(values, grades, strict=True)) / samples

    rlvr, stored = sum(g.correct for g in grades) / samples if samples else 0.0, pooled("stored")
    return {
        "file": "total",
        "records": sum(g.records for g in grades),
        "samples": samples,
        "correct": sum(g.correct for g in grades),
        "rlvr": rlvr,
        "stored": stored,
        "published": None,
        "adjudicated": pooled("adjudicated"),
        "disagreements": sum(g.disagreements for g in grades),
        "explained": sum(g.explained for g in grades),
        "timeouts": sum(g.timeouts for g in grades),
        "diff_points": None if stored is None else 100 * (rlvr - stored),
    }


def _read(path: Path, root: Path | None) -> list[LabeledResponse]:
    """The file's responses, named relative to `root` when it lies under it (so names match adjudication
    entries), else by the path as given."""
    if root is not None and path.resolve().is_relative_to(root.resolve()):
        return read_generations(path.resolve(), root=root.resolve())
    return read_generations(path)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"
