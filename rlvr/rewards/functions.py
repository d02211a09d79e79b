"""Reward functions a recipe names: accuracy, format, and the reward schemes of published recipes.

Everything in `REWARDS` has one signature, `reward(response, gold, *, final_form=False) -> float`: `response` is
the decoded completion (special tokens removed), `gold` the dataset's answer string, `final_form` the dataset's
(or the recipe's) rule that a numeric answer be written as a number (`verify`'s "unevaluated"). Whether an answer is right is
decided by `rlvr.rewards.math.verify` alone; this module only decides what a verdict is worth. Rewards that
need token counts or a whole group (DAPO overlong, cosine, Kimi length) live in `rlvr.rewards.length` and
are re-exported here; the trainer calls those itself, since only it knows lengths in tokens.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from rlvr.rewards.extract import answer_region
from rlvr.rewards.language import language_consistency
from rlvr.rewards.length import cosine_length, dapo_overlong, kimi_length_penalty
from rlvr.rewards.math import verify

__all__ = [
    "REWARDS",
    "Reward",
    "accuracy",
    "cosine_length",
    "dapo_overlong",
    "deepscaler",
    "kimi_length_penalty",
    "language_consistency",
    "r1_format",
    "r1_zero",
    "simplerl",
    "weighted_sum",
]


class Reward(Protocol):
    """(response, gold) -> scalar reward; final_form is passed on to `verify`."""

    def __call__(self, response: str, gold: str, *, final_form: bool = False) -> float: ...


# R1-Zero: "<think> reasoning </think> <answer> answer </answer>" and nothing else (whitespace aside)
_THINK_THEN_REST = re.compile(r"<think>(.*?)</think>(.*)", re.S)
_ANSWER_ONLY = re.compile(r"\s*<answer>(.*?)</answer>\s*", re.S)
_NONEMPTY_BOX = re.compile(r"\\boxed\s*\{\s*[^\s}]")  # a \boxed{ with something in it


def accuracy(response: str, gold: str, *, final_form: bool = False) -> float:
    """1.0 if the final answer equals `gold` mathematically, else 0.0 (DeepSeek-R1's accuracy reward).

    reward = 1[verify(response, gold).correct]. The final answer is the last `\\boxed{}` or, for R1-Zero,
    the `<answer>` content; see `rlvr.rewards.math`.
    """
    return 1.0 if verify(response, gold, final_form=final_form).correct else 0.0


def r1_format(response: str) -> float:
    """1.0 if the response has R1-Zero's shape, else 0.0 (DeepSeek-AI 2025, "DeepSeek-R1", format reward).

    The shape: optional whitespace (R1-Zero prompts end in "Assistant:", so completions often open with a
    space), exactly one `<think>…</think>` block with non-blank reasoning, then either only
    `<answer>…</answer>` with a non-blank answer (R1-Zero) or any text holding a non-empty `\\boxed{}`
    (Qwen-style prompts). Correctness is not checked here: a response can be well-formed and wrong.
    """
    if response.count("<think>") != 1 or response.count("</think>") != 1:
        return 0.0
    match = _THINK_THEN_REST.fullmatch(response.lstrip())
    if match is None or not match.group(1).strip():
        return 0.0
    rest = match.group(2)
    if "<answer>" in rest or "</answer>" in rest:  # R1-Zero: one answer block and nothing around it
        answer = _ANSWER_ONLY.fullmatch(rest)
        one_block = rest.count("<answer>") == 1 and rest.count("</answer>") == 1
        return 1.0 if one_block and answer is not None and answer.group(1).strip() else 0.0
    return 1.0 if _NONEMPTY_BOX.search(rest) else 0.0


def deepscaler(response: str, gold: str, *, final_form: bool = False) -> float:
    """DeepScaleR's reward (Luo et al. 2025, "DeepScaleR"): 0 without `</think>`, else accuracy after it.

    reward = 1[`</think>` in response and verify(text after the last `</think>`, gold).correct].
    Distill-model templates put `<think>` in the prompt, so only the closing tag is required; a response
    that never stops thinking (typically truncated) earns nothing however its scratch work ends.
    """
    _, closed, tail = response.rpartition("</think>")
    if not closed:
        return 0.0
    return (
        1.0 if verify(tail, gold, fallback="none", final_form=final_form).correct else 0.0
    )  # a box is required, as in DeepScaleR


def simplerl(response: str, gold: str, *, final_form: bool = False) -> float:
    """SimpleRL-Zero's reward (hkust-nlp simpleRL-reason v0, Zeng et al. 2025): +1 / −0.5 / −1.

    reward = −1 if the answer region (after `</think>`, if any) holds no non-empty `\\boxed{}` (an empty
    box is no answer), else +1 if verify(response, gold).correct, else −0.5. The box check comes first, so
    an answer the verifier finds by a fallback (last number) without a box still gets −1: the −1 is there
    to teach the boxed format.
    """
    region, _ = answer_region(response)
    if _NONEMPTY_BOX.search(region) is None:
        return -1.0
    return 1.0 if verify(response, gold, final_form=final_form).correct else -0.5


def r1_zero(response: str, gold: str, *, final_form: bool = False) -> float:
    """DeepSeek-R1-Zero's rule reward: accuracy + format, equal weights, in {0, 1, 2}.

    reward = accuracy(response, gold) + r1_format(response). The paper sums the two without stating weights.
    """
    return accuracy(response, gold, final_form=final_form) + r1_format(response)


REWARDS: dict[str, Reward] = {
    "accuracy": accuracy,
    "r1_format": lambda response, gold, final_form=False: r1_format(response),
    "r1_zero": r1_zero,
    "deepscaler": deepscaler,
    "simplerl": simplerl,
    # CoT language consistency; R1 adds it to accuracy: weighted_sum({"accuracy": 1, "language_en": 1})
    "language_en": lambda response, gold, final_form=False: language_consistency(response, "en"),
    "language_zh": lambda response, gold, final_form=False: language_consistency(response, "zh"),
}


def weighted_sum(weights: Mapping[str, float]) -> Reward:
    """One reward from several in `REWARDS`: reward(response, gold) = Σ_name weight · REWARDS[name](...).

    How a recipe writes "accuracy plus a 0.1 language bonus" as data:
    weighted_sum({"accuracy": 1, "language_en": 0.1}).
    Unknown names fail here, when the recipe is built, not at the first reward call.
    """
    unknown = sorted(set(weights) - set(REWARDS))
    if unknown:
        raise ValueError(f"unknown reward(s) {unknown}; known: {sorted(REWARDS)}")
    terms = [(REWARDS[name], float(weight)) for name, weight in weights.items()]

    def reward(response: str, gold: str, *, final_form: bool = False) -> float:
        return sum(weight * fn(response, gold, final_form=final_form) for fn, weight in terms)

    return reward
