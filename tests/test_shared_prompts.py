"""Responses packed with one copy of their shared prompt (`packing.share_prompts`, `shared_prompt_logprobs`): the
same log-probs, entropies and gradients as each row padded with its own copy, in every family, sdpa and eager."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor

from rlvr.models.logprobs import LogprobModel, completion_mask, shared_prompt_logprobs, token_logprobs
from rlvr.models.packing import share_prompts, shared_prompt_mask
from rlvr.models.tiny import ARCHS, WINDOW, build_tiny_model

TOL = 1e-5
PROMPTS = [[5, 9, 13, 17, 21, 25, 29, 33, 37, 41], [7, 11, 19]]  # the first longer than the sliding window
# two groups, as a GRPO step lays them out: responses of several lengths (one longer than the window), one empty
SEQS = [PROMPTS[0] + r for r in ([3, 4], [6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26], [30])] + [
    PROMPTS[1] + r for r in ([44, 45, 46], [], [47, 48, 49, 50, 51])
]
PROMPT_LENS = [len(PROMPTS[0])] * 3 + [len(PROMPTS[1])] * 3


@pytest.fixture(scope="module", params=ARCHS)
def model(request: pytest.FixtureRequest) -> Any:
    return build_tiny_model(request.param, seed=1)


def right_padded(seqs: list[list[int]]) -> tuple[Tensor, Tensor]:
    T = max(map(len, seqs))
    ids = torch.zeros((len(seqs), T), dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)], mask[b, : len(s)] = torch.tensor(s), 1
    return ids, mask


def both(model: Any, entropy: str = "detached") -> tuple[Any, Any]:
    """(shared, padded) log-probs of SEQS' responses."""
    ids, mask = right_padded(SEQS)
    lens = torch.tensor(PROMPT_LENS)
    shared = shared_prompt_logprobs(model, ids, mask, lens, chunk_size=5, entropy=entropy)  # type: ignore[arg-type]
    padded = token_logprobs(
        model,
        ids,
        mask,
        target_mask=completion_mask(mask, lens),
        chunk_size=5,
        entropy=entropy,  # type: ignore[arg-type]
    )
    return shared, padded


def test_layout_runs_each_prompt_once() -> None:
    shared = share_prompts(SEQS, PROMPT_LENS)
    assert shared.input_ids.shape == (2, 10 + 2 + 11 + 1)  # two rows: prompt + its responses, right-padded
    assert shared.input_ids[1, :3].tolist() == PROMPTS[1] and shared.segment[1, 11:].eq(-1).all()
    assert shared.segment[0].tolist() == [0] * 10 + [1, 1] + [2] * 11 + [3]
    assert shared.position_ids[0, 12:14].tolist() == [10, 11]  # the second response continues from its prompt
    # every response token once, in order; the first of a response is predicted by its prompt's last token
    responses = [t for s, p in zip(SEQS, PROMPT_LENS, strict=True) for t in s[p:]]
    assert shared.targets.tolist() == responses
    assert shared.predictor[:3].tolist() == [9, 10, 9]
    flat = shared.input_ids.reshape(-1)
    assert flat[shared.predictor[1]] == 3  # token 4 is predicted from token 3 of the same response


def test_a_response_sees_its_prompt_and_itself_only() -> None:
    shared = share_prompts(SEQS[:2], PROMPT_LENS[:2])
    allowed = shared_prompt_mask(shared)[0, 0]  # (L, L)
    assert allowed[11].tolist() == [True] * 12 + [False] * 11  # response 1's second token: prompt, itself
    assert allowed[12, :10].all() and not allowed[12, 10:12].any() and allowed[12, 12]  # response 2: not 1
    windowed = shared_prompt_mask(shared, window=WINDOW)[0, 0]
    assert windowed[12].nonzero().flatten().tolist() == [3, 4, 5, 6, 7, 8, 9, 12]  # positions 3..10


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_equals_each_row_with_its_own_prompt(model: Any, impl: str) -> None:
    if impl == "sdpa" and not model._supports_sdpa:
        pytest.skip(f"{model.config.model_type} has no sdpa attention")
    original = model.config._attn_implementation
    model.set_attn_implementation(impl)
    try:
        with torch.no_grad():
            shared, padded = both(model)
    finally:
        model.set_attn_implementation(original)
    assert torch.equal(shared.mask, padded.mask) and int(shared.mask.sum()) == 22
    torch.testing.assert_close(shared.logp, padded.logp, atol=TOL, rtol=0)
    torch.testing.assert_close(shared.entropy, padded.entropy, atol=TOL, rtol=0)


def test_gradients_equal(model: Any) -> None:
    weights = torch.linspace(-1.0, 1.0, len(SEQS))[:, None]

    def grads(out: Any) -> list[Tensor]:
        model.zero_grad()
        ((out.logp * weights).sum() + out.entropy.sum()).backward()
        return [p.grad.clone() for p in model.parameters() if p.grad is not None]

    shared, padded = both(model, entropy="grad")
    for a, b in zip(grads(shared), grads(padded), strict=True):
        torch.testing.assert_close(a, b, atol=TOL, rtol=1e-4)


def test_the_mask_keeps_responses_apart() -> None:
    """Guard: with a plain causal mask over the same packed rows, the second response would read the first."""
    model = build_tiny_model("llama", seed=1)
    shared = share_prompts(SEQS, PROMPT_LENS)
    kw = {"input_ids": shared.input_ids, "position_ids": shared.position_ids, "use_cache": False}
    with torch.no_grad():
        right = model.get_decoder()(attention_mask=shared_prompt_mask(shared), **kw).last_hidden_state
        causal = model.get_decoder()(attention_mask=None, **kw).last_hidden_state
    assert (right[0, :12] - causal[0, :12]).abs().max() < TOL  # the prompt and the first response agree
    assert (right[0, 12:23] - causal[0, 12:23]).abs().max() > 1e-2  # the second response read the first


def test_logprob_model_routes_prompt_lengths() -> None:
    model = build_tiny_model("qwen2", seed=1)
    ids, mask = right_padded(SEQS)
    with torch.no_grad():
        out = LogprobModel(model)(ids, mask, prompt_lengths=torch.tensor(PROMPT_LENS))
        direct = shared_prompt_logprobs(model, ids, mask, torch.tensor(PROMPT_LENS))
    assert torch.equal(out.logp, direct.logp)
    with pytest.raises(ValueError, match="right-padded rows"):
        LogprobModel(model)(ids, None, prompt_lengths=torch.tensor(PROMPT_LENS))


def test_a_dense_mask_past_the_limit_falls_back_to_padded_rows(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eager attention (softcapped gemma2) takes the dense mask, which grows as L²: past DENSE_LIMIT, padded rows."""
    from rlvr.models import logprobs

    model = build_tiny_model("gemma2", seed=1)
    assert model.config._attn_implementation == "eager"
    monkeypatch.setattr(logprobs, "DENSE_LIMIT", 0)
    with torch.no_grad():
        shared, padded = both(model)
    assert torch.equal(shared.logp, padded.logp)  # bitwise: the very same computation


def test_under_bf16_autocast_close_to_padded() -> None:
    """Autocast's SDPA casts q, k, v to bf16; a bottom-right causal block bypasses autocast and is cast by hand."""
    model = build_tiny_model("qwen2", seed=1)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        shared, padded = both(model)
    assert (shared.logp - padded.logp).abs().max() < 0.05


def test_gradient_checkpointing_takes_the_dense_mask() -> None:
    """A checkpointed layer reruns its attention in backward, after `active` has switched it back: such a model
    keeps the mask, which the rerun sees as well, and its gradients stay those of the padded rows."""
    from rlvr.models import shared_attention
    from rlvr.models.checkpoint import enable_gradient_checkpointing

    model = build_tiny_model("llama", seed=1)
    enable_gradient_checkpointing(model)  # as `gradient_checkpointing: true` does
    model.train()
    assert not shared_attention.supported(model)
    test_gradients_equal(model)
