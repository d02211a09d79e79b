"""Rollout engines: the fast engine against the HF reference, log-probs against a fresh forward pass, and the
contract every engine keeps (seeding, stop strings, eos, length, grouping, context errors)."""

from __future__ import annotations

import pytest
import torch

from rlvr.models.logprobs import completion_mask, extract_completions, token_logprobs
from rlvr.models.tiny import WINDOW, build_tiny_model, tiny_config
from rlvr.models.tokenizer import build_tiny_tokenizer
from rlvr.rollout import local_engine
from rlvr.rollout.decoder import KVCache
from rlvr.rollout.fast import FastEngine
from rlvr.rollout.hf import HFEngine
from rlvr.rollout.types import Rollout, RolloutEngine, SamplingParams

QUESTIONS = ["2+2?", "What is 17 * 23?", "Solve 3x + 7 = 22 for x, showing every step."]
ARCHS = ["qwen2", "llama-tied"]  # Qwen2: q/k/v biases; Llama: none, and tied input/output embeddings here
# What each family brings: qwen3 q/k norms per head; mistral a sliding window on every layer; gemma2 (1 + w) norms
# before and after each block, scaled embeddings, GELU, soft-capped scores and logits, sliding/global layers;
# gemma3 q/k norms and a RoPE base per layer type; phi3 fused projections, partial rotary; olmo2 norms after blocks.
FAMILIES = ["qwen3", "mistral", "gemma2", "gemma3_text", "phi3", "olmo2"]
SHORT = "hi"  # 2 tokens, raw: shorter than the tiny window (8) until its 7th new token; the chat prompts are longer
ENGINES = {"fast": FastEngine, "hf": HFEngine}


@pytest.fixture(scope="module")
def tokenizer():
    return build_tiny_tokenizer()


@pytest.fixture(scope="module")
def prompts(tokenizer) -> list[str]:
    chat = [[{"role": "user", "content": q}] for q in QUESTIONS]
    return [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chat]


def model_of(arch: str, **config):
    if arch == "llama-tied":
        return build_tiny_model("llama", tie_word_embeddings=True, **config)
    return build_tiny_model(arch, **config)


def forward_logprobs(model, rollout: Rollout, temperature: float = 1.0) -> list[float]:
    """log p(completion token t | prompt, completion[:t]) at `temperature` from one unpadded forward pass."""
    ids = torch.tensor([rollout.prompt_ids + rollout.completion_ids])
    with torch.no_grad():
        logits = model(ids).logits[0, len(rollout.prompt_ids) - 1 : -1].float()  # (T, V)
    logp = torch.log_softmax(logits / temperature, dim=-1)
    return logp.gather(-1, torch.tensor(rollout.completion_ids)[:, None])[:, 0].tolist()


def greedy(max_new_tokens: int = 24, n: int = 1, **kw) -> SamplingParams:
    return SamplingParams(n=n, temperature=0.0, max_new_tokens=max_new_tokens, **kw)


def same(a: list[Rollout], b: list[Rollout]) -> None:
    """Token-for-token equal completions with the same finish reasons and (fp32) log-probs."""
    assert [r.completion_ids for r in a] == [r.completion_ids for r in b]
    assert [r.finish_reason for r in a] == [r.finish_reason for r in b]
    assert [r.text for r in a] == [r.text for r in b]
    for x, y in zip(a, b, strict=True):
        assert x.logprobs == pytest.approx(y.logprobs, abs=1e-4)


def trainer_logprobs(model, rollouts: list[Rollout], temperature: float = 1.0) -> list[list[float]]:
    """The trainer's log-probs of each rollout's completion: `token_logprobs` over one left-padded batch."""
    rows = [r.prompt_ids + r.completion_ids for r in rollouts]
    T = max(len(row) for row in rows)
    ids = torch.zeros((len(rows), T), dtype=torch.long)
    mask = torch.zeros((len(rows), T), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, T - len(row) :], mask[i, T - len(row) :] = torch.tensor(row), 1
    prompt_lengths = torch.tensor([len(r.prompt_ids) for r in rollouts])
    with torch.no_grad():
        out = token_logprobs(
            model, ids, mask, target_mask=completion_mask(mask, prompt_lengths), temperature=temperature
        )
    logp, kept = extract_completions(out.logp, out.mask)
    return [row[m].tolist() for row, m in zip(logp, kept, strict=True)]


@pytest.mark.parametrize("arch", ARCHS + FAMILIES)
def test_greedy_fast_matches_hf(arch, tokenizer, prompts):
    """Token for token, on left-padded prompts of 2 to 63 tokens, past the sliding window of windowed families."""
    model = model_of(arch)
    params = greedy(n=2)
    fast = FastEngine(model, tokenizer).generate([*prompts, SHORT], params)
    same(fast, HFEngine(model, tokenizer).generate([*prompts, SHORT], params))
    assert len(fast) == (len(prompts) + 1) * 2
    assert all(len(r.completion_ids) == len(r.logprobs) > 0 for r in fast)
    assert len(fast[0].prompt_ids) > WINDOW > len(fast[-1].prompt_ids)


@pytest.mark.parametrize("arch", ["mistral", "gemma2", "gemma3_text", "phi3"])
def test_sdpa_path_matches_hf(arch, tokenizer, prompts):
    """The GPU default path, with sliding windows (its mask narrowed to the window) and partial rotary; gemma2's
    soft-capped attention takes the matmuls even when SDPA is asked for."""
    model = model_of(arch)
    fast = FastEngine(model, tokenizer, attention="sdpa").generate([*prompts, SHORT], greedy())
    same(fast, HFEngine(model, tokenizer).generate([*prompts, SHORT], greedy()))


@pytest.mark.parametrize("attention", ["matmul", "sdpa"])
def test_both_attention_paths_match_hf(attention, tokenizer, prompts):
    """The SDPA path is the GPU default; run it here too (left-padded prompts: its mask is exercised)."""
    model = model_of("qwen2")
    fast = FastEngine(model, tokenizer, attention=attention).generate(prompts, greedy(n=2))
    same(fast, HFEngine(model, tokenizer).generate(prompts, greedy(n=2)))


def test_greedy_matches_with_scaled_rope(tokenizer, prompts):
    """llama3 RoPE: the fast engine takes its table from the model's own rotary module."""
    config = tiny_config("llama")
    config.rope_parameters = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    same(
        FastEngine(model, tokenizer).generate(prompts, greedy()),
        HFEngine(model, tokenizer).generate(prompts, greedy()),
    )


def test_checkpoint_generation_defaults_do_not_leak_into_hf(tokenizer, prompts):
    """Qwen2.5-Instruct ships sampling defaults (repetition_penalty, top_k, ...): SamplingParams alone decides."""
    model = model_of("qwen2")
    config = model.generation_config
    config.do_sample, config.temperature, config.top_k, config.top_p = True, 0.3, 5, 0.8
    config.repetition_penalty, config.min_p, config.no_repeat_ngram_size = 1.3, 0.2, 2
    reference = FastEngine(model, tokenizer).generate(prompts, greedy())
    same(HFEngine(model, tokenizer).generate(prompts, greedy()), reference)
    same(
        HFEngine(model, tokenizer).generate(prompts, SamplingParams(top_k=1, max_new_tokens=24, seed=0)),
        reference,
    )


@pytest.mark.parametrize(
    "arch, engine", [(a, e) for a in ARCHS for e in ENGINES] + [(f, "fast") for f in FAMILIES]
)
def test_logprobs_equal_a_fresh_forward_pass(arch, engine, tokenizer, prompts):
    """The engine's log-probs, and the trainer's (`token_logprobs`, left-padded batch), equal log_softmax of HF's
    full forward over each unpadded sequence at the sampling temperature, untruncated (families beyond
    qwen2/llama: the fast engine's samples)."""
    model = model_of(arch)
    params = SamplingParams(n=2, temperature=0.7, top_p=0.9, max_new_tokens=20, seed=3)
    rollouts = ENGINES[engine](model, tokenizer).generate([*prompts, SHORT], params)
    for rollout, trainer in zip(rollouts, trainer_logprobs(model, rollouts, 0.7), strict=True):
        reference = forward_logprobs(model, rollout, 0.7)
        assert rollout.logprobs == pytest.approx(reference, abs=1e-4)
        assert trainer == pytest.approx(reference, abs=1e-4)


@pytest.mark.parametrize("engine", ENGINES)
def test_seeded_sampling_is_reproducible(engine, tokenizer, prompts):
    rollout_engine: RolloutEngine = ENGINES[engine](model_of("qwen2"), tokenizer)
    params = SamplingParams(n=2, temperature=1.0, top_k=20, max_new_tokens=16, seed=7)
    first = rollout_engine.generate(prompts, params)
    again = rollout_engine.generate(prompts, params)
    other = rollout_engine.generate(
        prompts, SamplingParams(n=2, temperature=1.0, top_k=20, max_new_tokens=16, seed=8)
    )
    assert [r.completion_ids for r in first] == [r.completion_ids for r in again]
    assert [r.completion_ids for r in first] != [r.completion_ids for r in other]


def test_top_k_1_and_tiny_top_p_are_greedy(tokenizer, prompts):
    """Truncation changes what is drawn, never the reported log-probs (the untruncated policy's)."""
    engine = FastEngine(model_of("qwen2"), tokenizer)
    reference = engine.generate(prompts, greedy())
    same(engine.generate(prompts, SamplingParams(top_k=1, max_new_tokens=24, seed=1)), reference)
    same(engine.generate(prompts, SamplingParams(top_p=1e-6, max_new_tokens=24, seed=1)), reference)


@pytest.mark.parametrize("engine", ENGINES)
def test_stop_string_ends_the_completion(engine, tokenizer, prompts):
    model = model_of("qwen2")
    ids = ENGINES[engine](model, tokenizer).generate(prompts[:1], greedy(40))[0].completion_ids
    # A stop string the greedy completion produces: two plain characters from its middle.
    k = next(k for k in range(6, 38) if min(ids[k], ids[k + 1]) >= len(tokenizer.all_special_tokens))
    stop = tokenizer.decode(ids[k : k + 2])
    end = next(e for e in range(1, 41) if stop in tokenizer.decode(ids[:e]))  # first token that completes it
    out = ENGINES[engine](model, tokenizer).generate(prompts[:1], greedy(40, stop=(stop,)))[0]
    assert out.finish_reason == "stop"
    assert out.completion_ids == ids[:end]
    assert out.text.endswith(stop)  # the stop string is kept


@pytest.mark.parametrize("engine", ENGINES)
def test_eos_ends_the_completion_and_ignore_eos_runs_on(engine, tokenizer, prompts):
    model = model_of("qwen2")
    free = ENGINES[engine](model, tokenizer).generate(prompts[:1], greedy(30))[0]
    eos = free.completion_ids[9]  # make a token the greedy completion produces an eos (generation config)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, eos]
    out = ENGINES[engine](model, tokenizer).generate(prompts[:1], greedy(30))[0]
    end = free.completion_ids.index(eos) + 1
    assert out.finish_reason == "stop"
    assert out.completion_ids == free.completion_ids[:end]  # the eos token is kept in the ids...
    assert len(out.logprobs) == end
    assert out.text == tokenizer.decode(free.completion_ids[: end - 1])  # ...but not in the text
    on = ENGINES[engine](model, tokenizer).generate(prompts[:1], greedy(30, ignore_eos=True))[0]
    assert on.finish_reason == "length" and on.completion_ids == free.completion_ids


@pytest.mark.parametrize("engine", ENGINES)
def test_max_new_tokens_gives_length(engine, tokenizer, prompts):
    rollouts = ENGINES[engine](model_of("qwen2"), tokenizer).generate(prompts, greedy(5, n=2))
    assert all(r.finish_reason == "length" and len(r.completion_ids) == 5 for r in rollouts)


def test_fast_engine_sees_weight_updates(tokenizer, prompts):
    model = model_of("qwen2")
    engine = FastEngine(model, tokenizer)  # built once, like a trainer would
    before = engine.generate(prompts, greedy())
    with torch.no_grad():  # an in-place update, as an optimizer step makes
        torch.manual_seed(1)
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    after = engine.generate(prompts, greedy())
    assert [r.completion_ids for r in after] != [r.completion_ids for r in before]
    same(after, HFEngine(model, tokenizer).generate(prompts, greedy()))


def test_rows_leave_the_batch_and_the_cache_grows(tokenizer, prompts, monkeypatch):
    """Early finishers compacted away, a cache grown past its first allocation, prompts in waves: the same
    completions as the reference."""
    model = model_of("qwen2")
    free = HFEngine(model, tokenizer).generate(prompts, greedy(90))
    # A token early in prompt 0's completion and absent from prompt 2's: some rows stop early, some run on.
    eos = next(t for t in free[0].completion_ids[2:] if t not in free[2].completion_ids)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, eos]
    reference = HFEngine(model, tokenizer).generate(prompts, greedy(90, n=2))
    assert {r.finish_reason for r in reference} == {"stop", "length"}
    resizes: list[bool] = []  # True: rows dropped, False: capacity grown
    resize = KVCache.resize
    monkeypatch.setattr(
        KVCache, "resize", lambda self, keep, *a: resizes.append(keep is not None) or resize(self, keep, *a)
    )
    for engine in (FastEngine(model, tokenizer, sync_every=2), FastEngine(model, tokenizer, max_batch=3)):
        same(engine.generate(prompts, greedy(90, n=2)), reference)
        assert engine.peak_cache_bytes > 0
    assert set(resizes) == {True, False}


@pytest.mark.parametrize("engine", ENGINES)
def test_rollouts_are_grouped_by_prompt(engine, tokenizer, prompts):
    params = SamplingParams(n=3, temperature=1.0, max_new_tokens=12, seed=0)
    rollouts = ENGINES[engine](model_of("qwen2"), tokenizer).generate(prompts, params)
    assert len(rollouts) == 3 * len(prompts)
    for i, prompt in enumerate(prompts):
        group = rollouts[i * 3 : i * 3 + 3]
        assert [(r.prompt_index, r.sample_index) for r in group] == [(i, 0), (i, 1), (i, 2)]
        assert all(r.prompt_ids == tokenizer(prompt, add_special_tokens=False)["input_ids"] for r in group)
        assert len({tuple(r.completion_ids) for r in group}) > 1  # n samples, not one repeated


@pytest.mark.parametrize("engine", ENGINES)
def test_prompt_longer_than_the_context_is_a_clear_error(engine, tokenizer):
    model = model_of("qwen2", max_position_embeddings=64)
    with pytest.raises(ValueError, match=r"prompt 1 has 100 tokens.*max_position_embeddings\) is 64"):
        ENGINES[engine](model, tokenizer).generate(["short", "x" * 100], greedy())


@pytest.mark.parametrize("engine", ENGINES)
def test_context_end_gives_length(engine, tokenizer):
    """A completion that reaches max_position_embeddings stops there, with "length"."""
    model = model_of("qwen2", max_position_embeddings=64)
    rollouts = ENGINES[engine](model, tokenizer).generate(["x" * 50, "y" * 20], greedy(30, ignore_eos=True))
    assert [len(r.completion_ids) for r in rollouts] == [14, 30]
    assert {r.finish_reason for r in rollouts} == {"length"}


def test_fast_engine_rejects_what_it_cannot_run(tokenizer, caplog, monkeypatch):
    """FastEngine itself refuses; `local_engine("fast")` gives the hf engine instead, with a notice, once."""
    model = model_of("qwen2")
    model.config.rope_parameters = {"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0}
    with pytest.raises(ValueError, match="RoPE types"):
        FastEngine(model, tokenizer).generate(["hi"], greedy())
    monkeypatch.setattr("rlvr.rollout._noticed", set())  # notices given earlier in this process
    with caplog.at_level("WARNING", logger="rlvr.rollout"):
        assert isinstance(local_engine("fast", model, tokenizer), HFEngine)
        assert isinstance(local_engine("fast", model, tokenizer), HFEngine)
    assert [r.getMessage() for r in caplog.records] == [
        "engine fast: the fast engine supports RoPE types ('default', 'linear', 'llama3', 'yarn'), not 'dynamic'; "
        "sampling with the hf engine (model.generate) instead"
    ]
    assert isinstance(local_engine("fast", model_of("gemma3_text"), tokenizer), FastEngine)


@pytest.mark.parametrize("arch", ["llama", *FAMILIES])
def test_bf16_prefill_and_decode_follow_hf(arch, tokenizer, prompts):
    """bfloat16 weights: the decoder's logits after a left-padded prefill and one decode step stay within bf16
    rounding of HF's forward (greedy paths part at near-ties, so tokens are not compared here)."""
    from rlvr.rollout.decoder import Decoder

    model = model_of(arch).to(torch.bfloat16)
    rows = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in [*prompts, SHORT]]
    T = max(len(r) for r in rows)
    ids = torch.tensor([[0] * (T - len(r)) + r for r in rows])  # (B, T) left-padded
    pad = torch.tensor([T - len(r) for r in rows])
    mask = (torch.arange(T + 1)[None] >= pad[:, None]).long()  # (B, T+1)
    decoder = Decoder(model, max_positions=T + 1)
    cache = decoder.new_cache(len(rows), T + 1)
    with torch.inference_mode():
        first = decoder.prefill(ids, pad, cache, slice(0, len(rows)), 0, 1)  # (B, V)
        nxt = first.argmax(-1)  # (B,)
        second = decoder.decode(nxt, T, pad, decoder.pad_bias(pad, T + 1), cache)
        full = torch.cat([ids, nxt[:, None]], dim=1)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        ref = model(input_ids=full, attention_mask=mask, position_ids=positions).logits[:, -2:].float()
    torch.testing.assert_close(first, ref[:, 0], atol=0.05, rtol=0)
    torch.testing.assert_close(second, ref[:, 1], atol=0.05, rtol=0)
