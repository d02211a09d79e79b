"""Agreement of rlvr's verifier and Math-Verify with the hand labels of real small-model responses.

    python bench/small_model_agreement.py                     # tests/data/smollm2_responses.jsonl
    python bench/small_model_agreement.py --skip-math-verify --show

Grades every response of the adjudicated set (see tests/data/README.md) three ways: rlvr with each row's
`final_form` flag (what training on these sets uses), rlvr with final_form off (the default for other sets), and
Math-Verify as bench/verifier.py calls it (verify(parse("$" + gold + "$"), parse(response))). The last line of stdout
is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rlvr.rewards.math import verify

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "smollm2_responses.jsonl"
Grade = Callable[[dict[str, Any]], bool]


def math_verify_grade() -> Grade:
    from math_verify import parse
    from math_verify import verify as mv_verify  # benchmark-only dependency: pip install rlvr[bench]

    for name in ("math_verify", "latex2sympy2_extended"):
        logging.getLogger(name).setLevel(logging.CRITICAL)

    def grade(row: dict[str, Any]) -> bool:
        try:
            return bool(mv_verify(parse("$" + row["gold"] + "$"), parse(row["response"])))
        except Exception:  # an exception counts as incorrect, as in bench/verifier.py
            return False

    return grade


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--skip-math-verify", action="store_true")
    ap.add_argument("--show", action="store_true", help="print every disagreement")
    args = ap.parse_args(argv)
    rows = [json.loads(line) for line in args.data.read_text(encoding="utf-8").splitlines() if line.strip()]
    graders: dict[str, Grade] = {
        "rlvr": lambda r: verify(r["response"], r["gold"], final_form=r["final_form"]).correct,
        "rlvr_final_form_off": lambda r: verify(r["response"], r["gold"]).correct,
    }
    if not args.skip_math_verify:
        graders["math_verify"] = math_verify_grade()
    report: dict[str, Any] = {"n": len(rows), "labeled_correct": sum(r["label"] for r in rows)}
    for name, grade in graders.items():
        wrong = [r for r in rows if grade(r) != r["label"]]
        agree = len(rows) - len(wrong)
        report[name] = {"agree": agree, "agree_pct": round(100 * agree / len(rows), 2)}
        print(
            f"{name:<20} agrees with the hand labels on {agree}/{len(rows)} ({100 * agree / len(rows):.2f}%)"
        )
        for r in wrong if args.show else []:
            print(f"  {r['id']} gold={r['gold']} label={r['label']}: {r['response'][-120:]!r}")
    print(json.dumps(report))
    return report


if __name__ == "__main__":
    main()
