"""Math answer verification: extract the final answer of a response and compare it with the gold.

PLACEHOLDER while the real verifier is written: exact string compare of the last \\boxed{}.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Verdict:
    """The outcome of grading one response."""

    correct: bool
    extracted: str | None  # the answer string taken from the response (None: nothing found)
    reason: str  # why: "equal", "not_equal", "no_answer", "timeout", "multiple_answers", ...


def verify(response: str, gold: str, *, timeout_s: float = 1.0) -> Verdict:
    """Grade `response` against the gold answer. Never raises, never runs past `timeout_s` (+ slack)."""
    i = response.rfind("\\boxed{")
    if i < 0:
        return Verdict(False, None, "no_answer")
    j = response.find("}", i)
    ans = response[i + 7 : j]
    return Verdict(ans.strip() == gold.strip(), ans, "equal" if ans.strip() == gold.strip() else "not_equal")
