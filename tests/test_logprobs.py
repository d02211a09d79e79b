"""Chunked log-probs against the full-logits reference: values, entropy, gradients, padding, packing, memory."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from rlvr.models.logprobs import (
    EntropyMode,
    completion_mask,
    extract_completions,
    head_logprobs,
    right_padded,
    token_logprobs,
)
from rlvr.models.packing import attention_mask_for, pack, packed_attention_mask, unpack
from rlvr.models.tiny import ARCHS, WINDOW, build_tiny_model

TOL = 1e-5


@pytest.fixture(scope="module", params=ARCHS)
def model(request: pytest.FixtureRequest) -> Any:
    """Every family: for what depends on the architecture (masks, windows, the head's transform)."""
    return build_tiny_model(request.param, seed=1)


@pytest.fixture(scope="module", params=["qwen2", "llama"])
def base_model(request: pytest.FixtureRequest) -> Any:
    """Two families: for the chunking, temperature and target bookkeeping, the same in every family."""
    return build_tiny_model(request.param, seed=1)


def naive(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
    temperature: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Reference: full (B, T, V) logits; logp and entropy (B, T-1), index t about token t+1."""
    logits = model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).logits.float()  # (B, T, V)
    logp_all = torch.log_softmax(logits / temperature, dim=-1)[:, :-1]  # (B, T-1, V)
    logp = logp_all.gather(-1, input_ids[:, 1:, None]).squeeze(-1)  # (B, T-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)  # (B, T-1)
    return logp, entropy


def random_ids(B: int, T: int, seed: int = 0) -> Tensor:
    return torch.randint(2, 105, (B, T), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("chunk_size", [1, 5, 7, 64, 4096])
def test_chunked_equals_naive(base_model: Any, chunk_size: int) -> None:
    ids = random_ids(3, 13)  # 3 * 12 = 36 predicted positions: 5 and 7 do not divide it
    with torch.no_grad():
        out = token_logprobs(base_model, ids, chunk_size=chunk_size)
        ref_logp, ref_ent = naive(base_model, ids)
    assert out.entropy is not None
    assert out.logp.dtype == torch.float32 and out.logp.shape == ids.shape
    assert not out.mask[:, 0].any() and out.mask[:, 1:].all()
    assert (out.logp[:, 0] == 0).all()
    torch.testing.assert_close(out.logp[:, 1:], ref_logp, atol=TOL, rtol=0)
    torch.testing.assert_close(out.entropy[:, 1:], ref_ent, atol=TOL, rtol=0)


@pytest.mark.parametrize("temperature", [0.6, 1.7])
def test_temperature(base_model: Any, temperature: float) -> None:
    ids = random_ids(2, 11, seed=3)
    with torch.no_grad():
        out = token_logprobs(base_model, ids, temperature=temperature, chunk_size=4)
        ref_logp, ref_ent = naive(base_model, ids, temperature=temperature)
        plain = token_logprobs(base_model, ids, chunk_size=4)
    assert out.entropy is not None
    torch.testing.assert_close(out.logp[:, 1:], ref_logp, atol=TOL, rtol=0)
    torch.testing.assert_close(out.entropy[:, 1:], ref_ent, atol=TOL, rtol=0)
    assert not torch.allclose(out.logp[:, 1:], plain.logp[:, 1:], atol=1e-3)


def pad(seqs: list[list[int]], side: str) -> tuple[Tensor, Tensor]:
    T = max(len(s) for s in seqs)
    ids = torch.zeros(len(seqs), T, dtype=torch.long)
    mask = torch.zeros(len(seqs), T, dtype=torch.long)
    for i, s in enumerate(seqs):
        sl = slice(T - len(s), T) if side == "left" else slice(0, len(s))
        ids[i, sl] = torch.tensor(s)
        mask[i, sl] = 1
    return ids, mask


# The last one is longer than the tiny sliding window (8): the window's mask is exercised, padded and packed.
SEQS = [
    [5, 9, 14, 3, 77],
    [8, 21, 33, 40, 41, 60, 2, 90, 11],
    [4, 6],
    [50, 51, 52, 53, 54, 55, 56],
    [7, 19, 23, 88, 12, 64, 5, 31, 99, 42, 17, 3, 70, 28, 44, 9, 61, 36, 80, 15],
]
assert len(SEQS[-1]) > 2 * WINDOW


def test_each_family_equals_naive(model: Any) -> None:
    """Gemma2's soft-capping comes before the temperature, as in sampling from HF's logits."""
    ids = random_ids(3, 13)
    with torch.no_grad():
        out = token_logprobs(model, ids, chunk_size=7, temperature=0.7)
        ref_logp, ref_ent = naive(model, ids, temperature=0.7)
    assert out.entropy is not None
    torch.testing.assert_close(out.logp[:, 1:], ref_logp, atol=TOL, rtol=0)
    torch.testing.assert_close(out.entropy[:, 1:], ref_ent, atol=TOL, rtol=0)


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_equals_unpadded(model: Any, side: str) -> None:
    ids, mask = pad(SEQS, side)
    with torch.no_grad():
        out = token_logprobs(model, ids, mask, chunk_size=5)
        assert out.entropy is not None
        for i, s in enumerate(SEQS):
            alone = token_logprobs(model, torch.tensor([s]), chunk_size=5)
            assert alone.entropy is not None
            real = mask[i].bool()
            torch.testing.assert_close(out.logp[i][real], alone.logp[0], atol=TOL, rtol=0)
            torch.testing.assert_close(out.entropy[i][real], alone.entropy[0], atol=TOL, rtol=0)
            assert out.mask[i].sum() == len(s) - 1  # every real token but the first
            assert (out.logp[i][~out.mask[i]] == 0).all()


@pytest.mark.parametrize("impl", ["sdpa", "eager"])
def test_packed_equals_separate(model: Any, impl: str) -> None:
    """Cross-contamination test: each packed sequence's log-probs are those it has alone."""
    original = model.config._attn_implementation
    if impl == "sdpa" and not model._supports_sdpa:
        pytest.skip(f"{model.config.model_type} has no sdpa attention")
    model.set_attn_implementation(impl)
    try:
        packed = pack(SEQS)
        with torch.no_grad():
            out = token_logprobs(model, packed.input_ids, position_ids=packed.position_ids, chunk_size=6)
            assert out.entropy is not None
            for s, logp, ent, m in zip(
                SEQS,
                unpack(out.logp, packed),
                unpack(out.entropy, packed),
                unpack(out.mask, packed),
                strict=True,
            ):
                alone = token_logprobs(model, torch.tensor([s]))
                assert alone.entropy is not None
                assert not m[0] and m[1:].all()  # the first token is conditioned on nothing before it
                torch.testing.assert_close(logp, alone.logp[0], atol=TOL, rtol=0)
                torch.testing.assert_close(ent, alone.entropy[0], atol=TOL, rtol=0)
    finally:
        model.set_attn_implementation(original)


def test_transformers_packing_detection_agrees(model: Any) -> None:
    """The flash-attention path: no mask, restarting position_ids, use_cache=False -> same hidden states (sliding
    windows included: transformers applies them to its own packed masks)."""
    packed = pack(SEQS)
    decoder = model.get_decoder()
    kw: dict[str, Any] = {
        "input_ids": packed.input_ids,
        "position_ids": packed.position_ids,
        "use_cache": False,
    }
    with torch.no_grad():
        ours = decoder(attention_mask=attention_mask_for(model, packed.position_ids), **kw).last_hidden_state
        theirs = decoder(attention_mask=None, **kw).last_hidden_state
    torch.testing.assert_close(ours, theirs, atol=TOL, rtol=0)


def test_packed_without_mask_would_leak(base_model: Any) -> None:
    """Guard that the packing test can fail: attending across sequences changes the later sequences."""
    packed = pack(SEQS)
    with torch.no_grad():
        leaky = base_model.get_decoder()(input_ids=packed.input_ids, use_cache=False).last_hidden_state
        ours = base_model.get_decoder()(
            input_ids=packed.input_ids,
            attention_mask=attention_mask_for(base_model, packed.position_ids),
            position_ids=packed.position_ids,
            use_cache=False,
        ).last_hidden_state
    n0 = len(SEQS[0])
    torch.testing.assert_close(leaky[:, :n0], ours[:, :n0], atol=TOL, rtol=0)
    assert (leaky[:, n0:] - ours[:, n0:]).abs().max() > 1e-2


@pytest.mark.parametrize("entropy_mode", ["detached", "grad"])
def test_gradients_equal_naive(model: Any, entropy_mode: EntropyMode) -> None:
    ids, mask = pad(SEQS, "left")
    position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
    weights = torch.randn(ids.shape[0], ids.shape[1] - 1, generator=torch.Generator().manual_seed(5))
    valid = (mask[:, 1:] * mask[:, :-1]).float()  # (B, T-1) positions both paths compute

    def grads() -> dict[str, Tensor]:
        g = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        model.zero_grad(set_to_none=True)
        return g

    model.zero_grad(set_to_none=True)
    ref_logp, ref_ent = naive(model, ids, mask, position_ids, temperature=0.9)
    ref_loss = (ref_logp * weights * valid).sum()
    if entropy_mode == "grad":
        ref_loss = ref_loss + 0.3 * (ref_ent * valid).sum()
    ref_loss.backward()
    ref = grads()

    out = token_logprobs(model, ids, mask, temperature=0.9, chunk_size=7, entropy=entropy_mode)
    assert out.entropy is not None
    loss = (out.logp[:, 1:] * weights).sum()
    if entropy_mode == "grad":
        loss = loss + 0.3 * out.entropy.sum()
    else:
        assert not out.entropy.requires_grad
    loss.backward()
    got = grads()

    assert set(got) == set(ref)
    assert "lm_head.weight" in ref and any(name.startswith("model.layers.0.self_attn.") for name in ref)
    for name in ref:  # every parameter: head, attention, embeddings
        torch.testing.assert_close(got[name], ref[name], atol=1e-5, rtol=1e-4, msg=name)


def test_target_mask_computes_only_those_positions(base_model: Any) -> None:
    ids, mask = pad(SEQS, "right")
    prompt_lengths = torch.tensor([2, 4, 1, 3, 6])
    target = completion_mask(mask, prompt_lengths)
    with torch.no_grad():
        full = token_logprobs(base_model, ids, mask)
        part = token_logprobs(base_model, ids, mask, target_mask=target, entropy="none")
    assert part.entropy is None
    assert torch.equal(part.mask, target & full.mask)
    torch.testing.assert_close(part.logp[part.mask], full.logp[part.mask], atol=TOL, rtol=0)
    assert (part.logp[~part.mask] == 0).all()


def test_bf16_model_upcasts(model: Any) -> None:
    ids = random_ids(2, 9, seed=7)
    half = build_tiny_model(model.config.model_type, seed=1).to(torch.bfloat16)
    with torch.no_grad():
        out = token_logprobs(half, ids, chunk_size=4)
        logits = half(input_ids=ids, use_cache=False).logits.float()  # (B, T, V)
        ref = torch.log_softmax(logits, -1)[:, :-1].gather(-1, ids[:, 1:, None]).squeeze(-1)
    assert out.logp.dtype == torch.float32
    torch.testing.assert_close(out.logp[:, 1:], ref, atol=TOL, rtol=0)


def test_completion_mask_and_extract() -> None:
    attention = torch.tensor([[0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0]])  # left- and right-padded rows
    prompt_lengths = torch.tensor([2, 3])
    m = completion_mask(attention, prompt_lengths)
    assert m.tolist() == [
        [False, False, False, False, True, True],
        [False, False, False, True, True, False],
    ]
    values = torch.arange(12, dtype=torch.float32).reshape(2, 6).requires_grad_()
    out, out_mask = extract_completions(values, m)
    assert out.tolist() == [[4.0, 5.0], [9.0, 10.0]] and out_mask.all()
    out.sum().backward()
    assert values.grad is not None and torch.equal(values.grad, m.float())
    ragged, ragged_mask = extract_completions(
        values.detach(), torch.tensor([[0, 0, 0, 1, 1, 1], [0] * 5 + [1]]).bool()
    )
    assert ragged.tolist() == [[3.0, 4.0, 5.0], [11.0, 0.0, 0.0]]
    assert ragged_mask.tolist() == [[True, True, True], [True, False, False]]


def test_pack_fields() -> None:
    p = pack([[7, 8, 9], [4, 5], [6, 1, 2, 3]], prompt_lengths=[2, 1, 3])
    assert p.input_ids.tolist() == [[7, 8, 9, 4, 5, 6, 1, 2, 3]]
    assert p.position_ids.tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    assert p.cu_seqlens.tolist() == [0, 3, 5, 9] and p.cu_seqlens.dtype == torch.int32
    assert p.completion_mask.int().tolist() == [[0, 0, 1, 0, 1, 0, 0, 0, 1]]
    assert [t.tolist() for t in unpack(p.input_ids, p)] == [[7, 8, 9], [4, 5], [6, 1, 2, 3]]
    assert pack([[1, 2], [3]]).completion_mask.tolist() == [[False, True, False]]
    with pytest.raises(ValueError):
        pack([[1, 2], []])
    with pytest.raises(ValueError):
        pack([[1, 2]], prompt_lengths=[0])


def test_packed_attention_mask_forms() -> None:
    position_ids = torch.tensor([[0, 1, 0, 1, 2]])
    allowed = packed_attention_mask(position_ids)
    assert allowed.shape == (1, 1, 5, 5) and allowed.dtype == torch.bool
    assert allowed[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [0, 0, 1, 0, 0],
        [0, 0, 1, 1, 0],
        [0, 0, 1, 1, 1],
    ]
    additive = packed_attention_mask(position_ids, dtype=torch.float32)
    assert torch.equal(additive == 0, allowed)
    assert (additive[~allowed] == torch.finfo(torch.float32).min).all()

    class Config:
        _attn_implementation = "flash_attention_2"

    class Flash:
        config = Config()

    assert attention_mask_for(Flash(), position_ids) is None


def test_packed_attention_mask_with_a_window() -> None:
    """A sliding window of 2: each token sees itself and the one before it, within its own sequence."""
    allowed = packed_attention_mask(torch.tensor([[0, 1, 2, 3, 0, 1]]), window=2)
    assert allowed[0, 0].int().tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [0, 1, 1, 0, 0, 0],
        [0, 0, 1, 1, 0, 0],
        [0, 0, 0, 0, 1, 0],
        [0, 0, 0, 0, 1, 1],
    ]


@pytest.mark.parametrize("arch", ["mistral", "gemma2", "gemma3_text"])
def test_sliding_window_is_applied_padded_and_packed(arch: str) -> None:
    """Guard that the window is live in these tests: without it, the long sequence's log-probs differ; with it,
    padded and packed rows agree with the sequence alone (mixed full/sliding layers take a mask per layer type)."""
    model = build_tiny_model(arch, seed=1)
    wide = build_tiny_model(arch, seed=1, sliding_window=1024)
    long = torch.tensor([SEQS[-1]])
    packed = pack(SEQS)
    ids, mask = pad(SEQS, "left")
    with torch.no_grad():
        alone = token_logprobs(model, long).logp[0]
        assert (token_logprobs(wide, long).logp[0] - alone).abs().max() > 1e-3
        padded = token_logprobs(model, ids, mask).logp[-1]
        packed_logp = unpack(
            token_logprobs(model, packed.input_ids, position_ids=packed.position_ids).logp, packed
        )
    torch.testing.assert_close(padded, alone, atol=TOL, rtol=0)
    torch.testing.assert_close(packed_logp[-1], alone, atol=TOL, rtol=0)
    masks = attention_mask_for(model, packed.position_ids)
    assert isinstance(masks, dict) == (arch != "mistral")  # mistral: every layer slides, one mask


@pytest.mark.parametrize(
    "config_name, field, value",
    [("CohereConfig", "logit_scale", 3.0), ("GraniteConfig", "logits_scaling", 0.25)],
)
def test_other_head_transforms(config_name: str, field: str, value: float) -> None:
    """Cohere multiplies its logits, Granite divides them: token_logprobs applies what the model's forward does."""
    import transformers

    torch.manual_seed(0)
    config = getattr(transformers, config_name)(
        vocab_size=105,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        **{field: value},
    )
    model = transformers.AutoModelForCausalLM.from_config(config).eval()
    ids = random_ids(2, 9)
    with torch.no_grad():
        out = token_logprobs(model, ids)
        ref_logp, _ = naive(model, ids)
    torch.testing.assert_close(out.logp[:, 1:], ref_logp, atol=TOL, rtol=0)


class LargestTensor(TorchDispatchMode):
    """Records the largest tensor any op produces (elements), forward and backward."""

    def __init__(self) -> None:
        super().__init__()
        self.largest = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, Tensor):
                self.largest = max(self.largest, t.numel())
        return out


def test_memory_bounded_by_chunk() -> None:
    """V = 32K, B*T = 8K: the full logits would be 8K x 32K (1 GiB in float32). The forward with gradients on builds
    nothing larger than chunk x V elements and saves nothing of size V for backward beyond the head's own weight;
    backward (checked on a quarter of the rows, for time) recomputes one chunk at a time, within the same bound."""
    N, H, V, chunk = 8192, 8, 32768, 512
    gen = torch.Generator().manual_seed(0)
    hidden = torch.randn(N, H, generator=gen).requires_grad_()
    weight = (0.1 * torch.randn(V, H, generator=gen)).requires_grad_()
    targets = torch.randint(0, V, (N,), generator=gen)

    saved: list[int] = []

    def keep(t: Tensor) -> Tensor:
        saved.append(t.numel())
        return t

    with LargestTensor() as forward, torch.autograd.graph.saved_tensors_hooks(keep, lambda t: t):
        logp, entropy = head_logprobs(hidden, weight, targets, chunk_size=chunk)
    assert logp.shape == (N,) and entropy is not None and entropy.shape == (N,)
    assert logp.requires_grad and not entropy.requires_grad
    assert forward.largest <= chunk * V  # 16M elements, a sixteenth of N x V
    assert max(saved, default=0) <= V * H  # the weight at most; no (chunk, V) activation kept across chunks

    rows = N // 4
    with LargestTensor() as backward:
        head_logprobs(hidden[:rows], weight, targets[:rows], chunk_size=chunk, entropy="none")[
            0
        ].sum().backward()
    assert backward.largest <= chunk * V
    assert weight.grad is not None and torch.isfinite(weight.grad).all()


def test_right_padded_detection() -> None:
    assert right_padded(torch.tensor([[1, 1, 1], [1, 1, 0], [1, 0, 0]]))
    assert not right_padded(torch.tensor([[1, 1, 1], [0, 1, 1]]))  # left padding
    assert not right_padded(torch.tensor([[1, 0, 1]]))  # a gap
