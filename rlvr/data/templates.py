"""Prompt templates: the published recipes' by name, verbatim (the exact text matters for reproducing their
numbers), or your own written inline in a recipe or on the command line.

A template is a system prompt (or none), a user message around `{problem}`, and an assistant prefix (or none).
Chat templates go through the tokenizer's own chat template (`apply_chat_template`), as the recipes did; a raw
template (`chat: false`, R1-Zero's) is the user text alone, for a base model.

    r1_zero     DeepSeek-R1-Zero: raw text, <think>/<answer> instructions, ends in "Assistant:"
    deepscaler  DeepScaleR / verl MATH: "{problem} Let's think step by step and output the final answer within \\boxed{}."
    qwen_math   Qwen2.5-Math (Dr. GRPO): system "Please reason step by step, and put your final answer within \\boxed{}."
    simplerl    SimpleRL-Zero: system "You are a helpful assistant."; the same sentence after the question
    plain       the problem alone, in the chat template

Inline, in a recipe (`template: {system: "...", user: "Q: {problem}", prefix: "<think>\\n"}`), as `key=value`
(`'template={user: "Q: {problem}", prefix: "<think>"}'`) or as `rlvr eval --template '{user: ...}'`.

The prefix. The prompt ends with it (after the chat template's generation prompt) and the model continues it, as
distill models that open their answer with `<think>\\n` expect. What the model wrote is then the prefix followed
by its completion: `response` joins them, and everything that grades or stores a response (RL rewards, eval and
sample records, held-out accuracy) sees that whole text, so a `<think>` the prefix opened is closed by the
completion's `</think>`, as the verifier's and the format rewards' think handling expect. SFT targets are the
text after the prompt, so the prefix (part of the prompt) is never a target (`rlvr.train.examples`).

`{problem}` is replaced literally (no `str.format`): braces in the text, `\\boxed{}`, stay as written.
Tokenizers whose chat template has no system role (Gemma's raise on one) are refused with one line naming the fix
(put the system text into `user`), rather than having the system text folded in silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."
PROBLEM = "{problem}"  # where the problem goes in `user`


@dataclass(frozen=True, slots=True)
class Template:
    user: str = PROBLEM  # the user message (raw: the whole prompt); {problem} is replaced by the problem text
    system: str | None = None  # the system message (chat only); None: none
    prefix: str = ""  # the start of the assistant's answer, at the end of the prompt (e.g. "<think>\n")
    chat: bool = True  # through the tokenizer's chat template; False: raw text for a base model
    name: str = ""  # a registered template's name; "" for an inline one

    def __post_init__(self) -> None:
        if PROBLEM not in self.user:
            raise ValueError(f"template user text {self.user!r} has no {PROBLEM} (where the problem goes)")
        if self.system is not None and not self.chat:
            raise ValueError("a raw template (chat: false) has no system message: put its text into user")

    @property
    def label(self) -> str:
        """How logs and tables name it: the registered name, or `inline`."""
        return self.name or "inline"


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template(
            "A conversation between User and Assistant. The user asks a question, and the Assistant solves it. "
            "The assistant first thinks about the reasoning process in the mind and then provides the user with "
            "the answer. The reasoning process and answer are enclosed within <think> </think> and <answer> "
            "</answer> tags, respectively, i.e., <think> reasoning process here </think> <answer> answer here "
            "</answer>. User: {problem}. Assistant:",
            chat=False,
            name="r1_zero",
        ),
        Template(
            "{problem} Let's think step by step and output the final answer within \\boxed{}.",
            name="deepscaler",
        ),
        Template(PROBLEM, system=BOXED_INSTRUCTION, name="qwen_math"),
        Template(PROBLEM + "\n" + BOXED_INSTRUCTION, system="You are a helpful assistant.", name="simplerl"),
        Template(PROBLEM, name="plain"),
    ]
}


class ChatTokenizer(Protocol):
    chat_template: Any

    def apply_chat_template(self, conversation: Any, **kwargs: Any) -> Any: ...


def resolve(template: str | Template) -> Template:
    """A template by name (one of TEMPLATES), or an inline one as it is."""
    if isinstance(template, Template):
        return template
    if template not in TEMPLATES:
        raise ValueError(
            f"unknown template {template!r}; known: {', '.join(TEMPLATES)} (or an inline mapping)"
        )
    return TEMPLATES[template]


def parse(text: str, where: str = "--template") -> str | Template:
    """A command-line value: a template name, or an inline YAML mapping (`{user: "Q: {problem}", prefix: ...}`),
    checked here (an unknown name or key, a user text without {problem}: one line naming `where`)."""
    import yaml

    from rlvr.config import coerce

    try:
        value = yaml.safe_load(text) if text.lstrip().startswith("{") else text
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or "not YAML"
        raise ValueError(f"{where}: {text!r} is not a YAML mapping ({problem})") from None
    try:
        template: str | Template = coerce(value, str | Template, where)
        resolve(template)
    except ValueError as e:
        raise ValueError(str(e) if str(e).startswith(where) else f"{where}: {e}") from None
    return template


def messages(template: str | Template, problem: str) -> list[dict[str, str]]:
    """The chat messages of a template for one problem (system, user; the prefix is not a message)."""
    t = resolve(template)
    out = [{"role": "system", "content": t.system}] if t.system is not None else []
    return [*out, {"role": "user", "content": t.user.replace(PROBLEM, problem)}]


def render(template: str | Template, problem: str, tokenizer: ChatTokenizer | None = None) -> str:
    """The prompt text a model sees: the raw text, or the tokenizer's chat template with the generation prompt;
    then the template's prefix. Every prompt rlvr samples or trains on is made here."""
    t = resolve(template)
    if not t.chat:
        return t.user.replace(PROBLEM, problem) + t.prefix
    if tokenizer is None or not getattr(tokenizer, "chat_template", None):
        raise ValueError(
            f"template {t.label!r} needs the tokenizer's chat template, and "
            + ("no tokenizer was given" if tokenizer is None else "this tokenizer has none")
            + "; use a raw template (r1_zero, or chat: false) for a base model without one"
        )
    chat = messages(t, problem)
    try:
        text = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    except Exception as e:
        if t.system is None:
            raise
        try:  # the same conversation without the system message: does it go through?
            tokenizer.apply_chat_template(chat[1:], tokenize=False, add_generation_prompt=True)
        except Exception:
            raise e from None
        raise ValueError(
            f"template {t.label!r} has a system message, and this tokenizer's chat template has no system role "
            f'(it raised: {e}); put the system text into the user text, e.g. user: "SYSTEM\\n\\n{PROBLEM}"'
        ) from None
    return str(text) + t.prefix


def response(template: str | Template, completion: str) -> str:
    """What the model wrote, in context: the prefix the prompt ended with, then its completion."""
    return resolve(template).prefix + completion
