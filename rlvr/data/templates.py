"""Prompt templates of the published recipes, verbatim (the exact text matters for reproducing their numbers).

A template is a system prompt (or none) and a user message around `{problem}`. Chat templates go through the
tokenizer's own chat template (`apply_chat_template`), as the recipes did; R1-Zero's is raw text for a base model.

    r1_zero     DeepSeek-R1-Zero: raw text, <think>/<answer> instructions, ends in "Assistant:"
    deepscaler  DeepScaleR / verl MATH: "{problem} Let's think step by step and output the final answer within \\boxed{}."
    qwen_math   Qwen2.5-Math (Dr. GRPO): system "Please reason step by step, and put your final answer within \\boxed{}."
    simplerl    SimpleRL-Zero: system "You are a helpful assistant."; the same sentence after the question
    plain       the problem alone, in the chat template
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    user: str  # formatted with {problem}
    system: str | None = None
    chat: bool = True  # through the tokenizer's chat template; False: raw text for a base model


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            "r1_zero",
            "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
            "The assistant first thinks about the reasoning process in the mind and then provides the user with "
            "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
            "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
            "</answer>. User: {problem}. Assistant:",
            chat=False,
        ),
        Template(
            "deepscaler", "{problem} Let's think step by step and output the final answer within \\boxed{{}}."
        ),
        Template("qwen_math", "{problem}", system=BOXED_INSTRUCTION),
        Template(
            "simplerl",
            "{problem}\n" + BOXED_INSTRUCTION.replace("{}", "{{}}"),
            system="You are a helpful assistant.",
        ),
        Template("plain", "{problem}"),
    ]
}


class ChatTokenizer(Protocol):
    chat_template: Any

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def get_template(name: str) -> Template:
    if name not in TEMPLATES:
        raise ValueError(f"unknown template {name!r}; known: {', '.join(TEMPLATES)}")
    return TEMPLATES[name]


def messages(name: str, problem: str) -> list[dict[str, str]]:
    """The chat messages of a template for one problem."""
    t = get_template(name)
    out = [{"role": "system", "content": t.system}] if t.system else []
    return [*out, {"role": "user", "content": t.user.format(problem=problem)}]


def render(name: str, problem: str, tokenizer: ChatTokenizer | None = None) -> str:
    """The prompt text a model sees: raw for r1_zero, else the tokenizer's chat template with the generation prompt."""
    t = get_template(name)
    if not t.chat:
        return t.user.format(problem=problem)
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"template {name!r} needs the tokenizer's chat template, and "
            + ("no tokenizer was given" if tokenizer is None else "this tokenizer has none")
            + "; use template r1_zero for a base model without one"
        )
    text = tokenizer.apply_chat_template(messages(name, problem), tokenize=False, add_generation_prompt=True)
    return str(text)
