"""Sampling from a bf16 copy of an fp32 policy (`rollout_dtype`): what the copy samples, and that it follows the
policy's updates."""

from __future__ import annotations

import copy

import pytest
import torch

from rlvr.models.build import cast_parameters
from rlvr.models.tiny import build_tiny_pair
from rlvr.rollout import local_engine
from rlvr.rollout.cast import CastEngine
from rlvr.rollout.types import SamplingParams

GREEDY = SamplingParams(n=1, temperature=0.0, max_new_tokens=16, ignore_eos=True)


@pytest.fixture
def pair():
    model, tokenizer = build_tiny_pair("llama", tie_word_embeddings=True)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in ("2+2?", "What is 17 * 23?")
    ]
    return model, tokenizer, prompts


def test_a_bf16_engine_samples_what_the_bf16_model_samples_and_leaves_the_policy_fp32(pair) -> None:
    model, tokenizer, prompts = pair
    engine = local_engine("fast", model, tokenizer, dtype="bfloat16")
    assert isinstance(engine, CastEngine)
    reference = local_engine("fast", cast_parameters(copy.deepcopy(model), torch.bfloat16), tokenizer)
    got = [r.completion_ids for r in engine.generate(prompts, GREEDY)]
    assert got == [r.completion_ids for r in reference.generate(prompts, GREEDY)]
    assert all(p.dtype == torch.float32 for p in model.parameters())
    copied = {name: b.dtype for name, b in engine.copy.named_buffers()}
    assert copied and all(
        dtype == torch.float32 for dtype in copied.values()
    )  # RoPE's inv_freq is not rounded
    assert {p.dtype for p in engine.copy.parameters()} == {torch.bfloat16}
    assert local_engine("fast", model, tokenizer, dtype="float32").__class__.__name__ == "FastEngine"


def test_the_copy_follows_in_place_updates_of_the_policy(pair) -> None:
    model, tokenizer, prompts = pair
    engine = local_engine("fast", model, tokenizer, dtype="bfloat16")
    before = [r.completion_ids for r in engine.generate(prompts, GREEDY)]
    with torch.no_grad():  # an optimizer step, in place
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    after = [r.completion_ids for r in engine.generate(prompts, GREEDY)]
    fresh = local_engine("fast", cast_parameters(copy.deepcopy(model), torch.bfloat16), tokenizer)
    assert after == [r.completion_ids for r in fresh.generate(prompts, GREEDY)]
    assert after != before


def test_an_unknown_rollout_dtype_is_one_line(pair) -> None:
    model, tokenizer, _ = pair
    with pytest.raises(ValueError, match="rollout dtype must be auto, float32 or bfloat16, not 'float16'"):
        local_engine("fast", model, tokenizer, dtype="float16")
