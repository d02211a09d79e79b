"""Prompt templates by name or inline: YAML recipes, key=value and --template give the same typed `Template`; the
assistant prefix ends the prompt and starts what is graded, stored and (for SFT) never taught twice; bad templates
are one-line errors."""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path

import pytest

from rlvr.config import load_config
from rlvr.data.schema import Problem
from rlvr.data.templates import TEMPLATES, Template, parse, render, response
from rlvr.eval import run as eval_run
from rlvr.eval.accuracy import heldout_accuracy
from rlvr.eval.evaluate import EvalSettings, read_samples
from rlvr.models.checkpoint import save_checkpoint
from rlvr.models.tiny import build_tiny_pair
from rlvr.models.tokenizer import build_tiny_tokenizer
from rlvr.rollout.types import Rollout, SamplingParams
from rlvr.train.examples import encode
from rlvr.train.rl_config import RLConfig
from rlvr.train.sft import SFTConfig

INLINE = Template(user="Q: {problem}", system="Be brief.", prefix="<think>\n")


@pytest.fixture(scope="module")
def tok():
    return build_tiny_tokenizer()


def test_an_inline_template_from_a_yaml_recipe_and_from_key_value(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text('template:\n  system: Be brief.\n  user: "Q: {problem}"\n  prefix: "<think>\\n"\n')
    assert load_config(RLConfig, recipe).template == INLINE
    assert load_config(SFTConfig, recipe).template == INLINE
    line = 'template={system: Be brief., user: "Q: {problem}", prefix: "<think>\\n"}'
    assert load_config(RLConfig, None, [line]).template == INLINE
    # a dotted key updates the preset's mapping; a name replaces it
    assert load_config(RLConfig, recipe, ["template.prefix=<answer>"]).template == Template(
        user="Q: {problem}", system="Be brief.", prefix="<answer>"
    )
    assert load_config(RLConfig, recipe, ["template=qwen_math"]).template == "qwen_math"
    assert parse('{system: Be brief., user: "Q: {problem}", prefix: "<think>\\n"}') == INLINE
    assert parse("plain") == "plain"


def test_rendering_puts_system_user_then_the_prefix_through_the_chat_template(tok) -> None:
    assert render(INLINE, "1+1", tok) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ: 1+1<|im_end|>\n<|im_start|>assistant\n"
        "<think>\n"
    )
    raw = Template(user="Problem: {problem}\nAnswer:", prefix=" <think>", chat=False)
    assert render(raw, "1+1") == "Problem: 1+1\nAnswer: <think>"
    # braces stay as written: {problem} is replaced, nothing else is formatted
    assert render(Template(user="{problem} in \\boxed{}"), "x", tok).endswith(
        "x in \\boxed{}<|im_end|>\n<|im_start|>assistant\n"
    )
    assert response(INLINE, "so</think>") == "<think>\nso</think>"
    assert TEMPLATES["simplerl"].user.endswith("within \\boxed{}.")


def test_bad_templates_are_one_line_errors(tmp_path: Path, tok) -> None:
    cases = [
        (["template={user: 'Q:'}"], r"config\.template: template user text 'Q:' has no \{problem\}"),
        (
            ["template=nope"],
            r"unknown template 'nope'; known: r1_zero, deepscaler, qwen_math, simplerl, plain",
        ),
        (["template={usr: x}"], r"argument 'template=\{usr: x\}': unknown key 'usr' for Template"),
        (["template={system: S, user: '{problem}', chat: false}"], r"raw template .* has no system message"),
    ]
    for overrides, message in cases:
        with pytest.raises(ValueError, match=message) as e:
            load_config(RLConfig, None, overrides)
        assert "\n" not in str(e.value)
    with pytest.raises(ValueError, match=r"^--template: unknown template 'qwen'"):
        parse("qwen")
    with pytest.raises(ValueError, match=r"^--template: .*has no \{problem\}"):
        parse("{user: 'Q'}")
    with pytest.raises(
        ValueError, match=r"^--template: unknown key 'prefx' for Template; known: user, system"
    ):
        parse("{prefx: x}")
    with pytest.raises(ValueError, match=r"^--template: .* is not a YAML mapping \(expected ',' or '\}'"):
        parse('{user: "{problem}"')


def test_a_chat_template_without_a_system_role_is_named(tok) -> None:
    gemma_like = copy.deepcopy(tok)
    gemma_like.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        + tok.chat_template
    )
    assert render("plain", "1+1", gemma_like).endswith("<|im_start|>assistant\n")
    with pytest.raises(
        ValueError, match=r"no system role \(it raised: System role not supported\); put the sys"
    ):
        render("qwen_math", "1+1", gemma_like)


def test_sft_target_starts_after_the_prefix(tok) -> None:
    def target(text: str) -> str:
        ex = encode(tok, {"problem": "2+3", "response": text}, INLINE, "x")
        prompt = tok.decode(ex.ids[: ex.prompt_len], skip_special_tokens=False)
        assert prompt.endswith("<|im_start|>assistant\n<think>\n")
        return str(tok.decode(ex.ids[ex.prompt_len :], skip_special_tokens=False))

    # as `rlvr sample` writes it (prefix included), or a solution without it: the same target
    assert target("<think>\nadd</think><answer>5</answer>") == "add</think><answer>5</answer><|im_end|>"
    assert target("add</think><answer>5</answer>") == "add</think><answer>5</answer><|im_end|>"
    with pytest.raises(ValueError, match=r"x: the response starts with '<think> a', the template's prefix"):
        target("<think> add</think>")


class Scripted:
    """An engine that writes `text` for every prompt and keeps the prompts it was given."""

    def __init__(self, text: str) -> None:
        self.text, self.prompts = text, list[str]()

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        self.prompts += prompts
        return [
            Rollout(i, j, [], [1, 2], self.text, [], "stop")
            for i in range(len(prompts))
            for j in range(params.n)
        ]


def test_held_out_accuracy_grades_the_prefix_with_the_completion(tok) -> None:
    """A `<think>` opened by the prefix and never closed leaves no answer: the same completion is right without
    the prefix and unfinished with it."""
    model, _ = build_tiny_pair(seed=0)
    problems = [Problem("a", "2+3", "5")]
    completion = "so <answer>5</answer>"
    for template, right in ((Template(), True), (Template(prefix="<think>"), False)):
        engine = Scripted(completion)
        result = heldout_accuracy(model, tok, problems, template=template, max_new_tokens=4, engine=engine)
        assert result.accuracy == float(right)
        assert engine.prompts[0].endswith("assistant\n" + template.prefix)
    closed = Scripted("so</think><answer>5</answer>")
    think = Template(prefix="<think>")
    assert (
        heldout_accuracy(model, tok, problems, template=think, max_new_tokens=4, engine=closed).accuracy == 1
    )


def test_eval_of_the_tiny_model_with_an_inline_template_stores_prefix_and_completion(tmp_path: Path) -> None:
    model, tokenizer = build_tiny_pair(seed=0)
    path = save_checkpoint(model, tokenizer, tmp_path / "tiny")
    parser = argparse.ArgumentParser()
    eval_run.add_arguments(parser)
    template = '{user: "Sum {problem}", prefix: "<think>"}'
    args = [str(path), "--benchmarks", "arith_test", "--limit", "2", "--n", "2", "--max-new-tokens", "8"]
    args += ["--template", template, "--workers", "0", "--no-progress", "--out", str(tmp_path / "run")]
    assert eval_run.run(parser.parse_args(args)) == 0
    lines, _ = read_samples(tmp_path / "run" / "arith_test.samples.jsonl")
    assert len(lines) == 4 and all(line["text"].startswith("<think>") for line in lines)
    stored = json.loads((tmp_path / "run" / "eval_config.json").read_text())
    assert stored["template"] == {
        "user": "Sum {problem}",
        "system": None,
        "prefix": "<think>",
        "chat": True,
        "name": "",
    }
    assert EvalSettings(template=parse(template)).identity()["template"] == stored["template"]
