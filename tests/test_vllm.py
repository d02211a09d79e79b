"""VLLMEngine against the Hugging Face model it serves: greedy parity, policy log-probs, weight pushes, sleep/wake.

Needs the vllm extra and a CUDA GPU (the module is skipped otherwise) and is slow (an engine start): opt in with
`pytest -m slow tests/test_vllm.py`. The adapter's mappings and bookkeeping are tested on CPU in
test_vllm_adapter.py.

The reference is the same checkpoint in float32 under rlvr's HF engine (greedy) and a plain forward (log-probs);
vLLM runs it in float16. Random tiny models have near-uniform logits, where float16 rounding flips argmaxes, so the
LM head is scaled up (logits with a spread of ~7 nats) and greedy paths may part only at a near-tie, which is
checked, not assumed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
if not torch.cuda.is_available():
    pytest.skip("vLLM needs a CUDA GPU", allow_module_level=True)
pytest.importorskip("vllm")

from rlvr.models.checkpoint import save_checkpoint  # noqa: E402
from rlvr.models.tiny import build_tiny_model  # noqa: E402
from rlvr.models.tokenizer import build_tiny_tokenizer  # noqa: E402
from rlvr.rollout.hf import HFEngine  # noqa: E402
from rlvr.rollout.text import completion_text  # noqa: E402
from rlvr.rollout.types import Rollout, SamplingParams  # noqa: E402
from rlvr.rollout.vllm import VLLMEngine  # noqa: E402

pytestmark = pytest.mark.slow

SIZE = {"hidden_size": 128, "num_heads": 2, "num_kv_heads": 1, "intermediate_size": 256}  # head_dim 64
SHARPEN = 30.0  # LM head scale
TIE = 0.1  # logit gap (nats) under which float16 may pick the other token
LOGP_ATOL = 0.05  # float16 engine vs float32 reference, per token
PROMPTS = ["2+3=", "<|im_start|>user\nWhat is 7*6?<|im_end|>\n<|im_start|>assistant\n", "a", "The answer is"]
GREEDY = SamplingParams(temperature=0.0, max_new_tokens=24)


def sharp_model(seed: int) -> Any:
    model = build_tiny_model("qwen2", seed=seed, **SIZE)
    with torch.no_grad():
        model.lm_head.weight.mul_(SHARPEN)
    return model


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tokenizer = build_tiny_tokenizer()
    policy, other = sharp_model(0), sharp_model(1)
    path = save_checkpoint(policy, tokenizer, Path(tmp_path_factory.mktemp("vllm")) / "policy")
    engine = VLLMEngine(
        path,
        gpu_memory_utilization=0.2,
        dtype="float16",
        max_model_len=256,
        enable_sleep_mode=True,
        enforce_eager=True,
    )
    return engine, tokenizer, policy.cuda(), other.cuda()


@torch.no_grad()
def logits_after(model: Any, ids: list[int]) -> Any:
    """(len(ids), V) float32 logits: row t predicts token t + 1."""
    return model(torch.tensor([ids], device="cuda")).logits[0].float()


def reference_logprobs(model: Any, rollout: Rollout) -> list[float]:
    """Temperature-1 log-probs of the completion's tokens: the convention Rollout.logprobs follows."""
    logp = logits_after(model, rollout.prompt_ids + rollout.completion_ids).log_softmax(-1)
    rows = logp[len(rollout.prompt_ids) - 1 : -1]
    return rows.gather(-1, torch.tensor(rollout.completion_ids, device="cuda")[:, None])[:, 0].tolist()


def assert_greedy_parity(model: Any, tokenizer: Any, rollouts: list[Rollout]) -> None:
    """vLLM's greedy completions are rlvr's HF engine's, except past a point where the reference nearly ties."""
    prompts = [PROMPTS[r.prompt_index] for r in rollouts]
    for r, ref in zip(rollouts, HFEngine(model, tokenizer).generate(prompts, GREEDY), strict=True):
        assert r.prompt_ids == ref.prompt_ids
        for k, (ours, theirs) in enumerate(zip(r.completion_ids, ref.completion_ids, strict=False)):
            if ours != theirs:
                row = logits_after(model, r.prompt_ids + ref.completion_ids[:k])[-1]
                gap = float(row[theirs] - row[ours])
                assert gap < TIE, (
                    f"prompt {r.prompt_index}: token {k} is {ours}, reference {theirs} by {gap:.3f}"
                )
                break
        else:
            assert (r.completion_ids, r.text, r.finish_reason) == (
                ref.completion_ids,
                ref.text,
                ref.finish_reason,
            )


def test_greedy_matches_the_hf_model_token_for_token(setup: Any) -> None:
    engine, tokenizer, policy, _ = setup
    rollouts = engine.generate(PROMPTS, GREEDY)
    assert [r.prompt_index for r in rollouts] == [0, 1, 2, 3]
    for r, prompt in zip(rollouts, PROMPTS, strict=True):
        assert r.prompt_ids == tokenizer(prompt, add_special_tokens=False)["input_ids"]
        assert r.text == completion_text(tokenizer, r.completion_ids, engine.eos)
        assert len(r.logprobs) == len(r.completion_ids)
        ended_on_eos = r.completion_ids[-1] in engine.eos
        assert r.finish_reason == ("stop" if ended_on_eos else "length")
        assert ended_on_eos or len(r.completion_ids) == GREEDY.max_new_tokens
    assert_greedy_parity(policy, tokenizer, rollouts)


def test_logprobs_are_the_temperature_one_policy_logprobs(setup: Any) -> None:
    engine, _, policy, _ = setup
    params = SamplingParams(n=3, temperature=0.7, top_k=10, top_p=0.95, max_new_tokens=16, seed=1)
    rollouts = engine.generate(PROMPTS, params)
    assert [(r.prompt_index, r.sample_index) for r in rollouts] == [
        (i, j) for i in range(4) for j in range(3)
    ]
    spread = 0.0  # how far the temperature-0.7 log-probs are: the test tells raw from processed
    for r in rollouts:
        ref = torch.tensor(reference_logprobs(policy, r))
        torch.testing.assert_close(torch.tensor(r.logprobs), ref, atol=LOGP_ATOL, rtol=0)
        logits = logits_after(policy, r.prompt_ids + r.completion_ids)[len(r.prompt_ids) - 1 : -1]
        cold = (
            (logits / 0.7).log_softmax(-1).gather(-1, torch.tensor(r.completion_ids, device="cuda")[:, None])
        )
        spread = max(spread, float((cold[:, 0].cpu() - ref).abs().max()))
    assert spread > 10 * LOGP_ATOL
    again = engine.generate(PROMPTS, params)
    assert [r.completion_ids for r in again] == [
        r.completion_ids for r in rollouts
    ]  # same seed, same samples


def test_equal_prompts_of_a_seeded_batch_get_different_samples(setup: Any) -> None:
    engine, _, _, _ = setup
    params = SamplingParams(
        n=2, temperature=4.0, max_new_tokens=16, seed=5
    )  # hot: the sharp model spreads out
    rollouts = engine.generate(["2+3=", "2+3="], params)
    assert len({tuple(r.completion_ids) for r in rollouts}) == 4


def test_stop_string_ends_the_completion_and_stays_in_the_text(setup: Any) -> None:
    engine, tokenizer, _, _ = setup
    full = engine.generate(PROMPTS[:1], GREEDY)[0]
    chars = [tokenizer.convert_ids_to_tokens(t) for t in full.completion_ids]
    k = next((k for k in range(1, len(chars)) if len(chars[k]) == 1 and chars[k] not in chars[:k]), None)
    if k is None:
        pytest.skip("the greedy completion has no fresh single character to stop on")
    stopped = engine.generate(
        PROMPTS[:1], SamplingParams(temperature=0.0, max_new_tokens=24, stop=(chars[k],))
    )[0]
    assert stopped.completion_ids == full.completion_ids[: k + 1]
    assert stopped.finish_reason == "stop" and stopped.text.endswith(chars[k])


def test_pushed_weights_change_the_outputs_and_come_back(setup: Any) -> None:
    engine, tokenizer, policy, other = setup
    before = engine.generate(PROMPTS, GREEDY)
    engine.load_weights(other.named_parameters())
    pushed = engine.generate(PROMPTS, GREEDY)
    assert [r.completion_ids for r in pushed] != [r.completion_ids for r in before]
    assert_greedy_parity(other, tokenizer, pushed)
    engine.load_weights((name, p.detach().cpu()) for name, p in policy.named_parameters())  # any device
    assert [r.completion_ids for r in engine.generate(PROMPTS, GREEDY)] == [r.completion_ids for r in before]
    with pytest.raises(ValueError, match="took none"):
        engine.load_weights([("not.a.parameter", torch.zeros(1))])


def test_sleep_frees_gpu_memory_and_generate_wakes_it(setup: Any) -> None:
    engine, _, policy, _ = setup
    before = engine.generate(PROMPTS, GREEDY)
    free_awake = torch.cuda.mem_get_info()[0]
    engine.sleep(level=1)
    assert engine.is_sleeping
    assert torch.cuda.mem_get_info()[0] - free_awake > 1 << 30  # the KV cache alone is gigabytes here
    assert [r.completion_ids for r in engine.generate(PROMPTS, GREEDY)] == [r.completion_ids for r in before]
    assert not engine.is_sleeping

    engine.sleep(level=2)  # weights dropped: generating now would sample from garbage
    with pytest.raises(RuntimeError, match="load_weights first"):
        engine.generate(PROMPTS, GREEDY)
    engine.load_weights(policy.named_parameters())  # wakes the weights only
    assert engine.is_sleeping
    assert [r.completion_ids for r in engine.generate(PROMPTS, GREEDY)] == [r.completion_ids for r in before]
