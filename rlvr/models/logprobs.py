"""Per-token log-probs and entropies of a batch under a causal LM, without materialising (B, T, V) logits.

Full float32 logits of a batch cost B*T*V*4 bytes: 8K tokens of Qwen2 (V = 151,936) is 5 GB, and autograd keeps a
log-softmax of the same size for backward. Here the backbone runs once (hidden states (B, T, H)), and the LM head
projects C = `chunk_size` positions at a time: logits (C, V) upcast to float32, divided by the temperature,
log-softmax, the target token's log-prob gathered, the entropy reduced. Only per-token results leave a chunk.

Memory. With gradients on, each chunk runs under `torch.utils.checkpoint`: its forward keeps nothing of size V, and
backward recomputes the chunk's logits, one chunk at a time. Without the checkpoint autograd would keep every
chunk's (C, V) log-softmax and the total would be the full B*T*V*4 bytes again. Peak memory beyond the model and its
hidden states is therefore a few (C, V) float32 tensors alive together — logits, log-softmax, and the entropy's p and
p*log p, or their gradients in backward: about 4*C*V*4 bytes. With V = 151,936 and C = 1024 that is ~0.6 GB per
C*V*4, ~2.5 GB peak, whatever B*T is. (tests/test_logprobs.py checks the no-grad and checkpointed paths never build
a tensor larger than C*V elements and save nothing of size V for backward, with V = 32K and B*T = 8K.)

Alignment. Results have the shape of `input_ids`, (B, T): `logp[b, t] = log p(input_ids[b, t] | tokens before t of
the same sequence)`. A position with no prediction — the first token of a sequence (t = 0, the first real token after
left padding, the first token of each packed sequence), padding, or outside `target_mask` — holds 0 and is False in
the returned `mask`. So a completion mask over `input_ids` is directly the loss mask; `extract_completions` turns it
into (B, C) rows aligned with a rollout's per-token `logprobs`.

The backbone (`model.get_decoder()`) and the head (`model.get_output_embeddings()`) are called directly, not
`model(...)`: a wrapper that acts in the top module's forward (DDP's gradient sync, FSDP's root unshard) does not
see this call: `LogprobModel` makes it a module's forward.

The head is linear (logits = hidden @ W.T + b) followed by what the model's own forward does to its logits
(`rlvr.models.families.LogitTransform`: Gemma's final soft-capping cap * tanh(logits / cap), Cohere's and Granite's
scaling), in the head's dtype before the float32 upcast, as HF's forward does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.checkpoint import checkpoint

from rlvr.models import shared_attention
from rlvr.models.families import LogitTransform, logit_transform
from rlvr.models.packing import (
    attention_mask_for,
    continues_sequence,
    per_layer_type,
    share_prompts,
    shared_prompt_mask,
    takes_4d_mask,
)

DENSE_LIMIT = 2**26  # elements of a dense shared-prompt mask (256 MB as eager's fp32): beyond, padded rows

# "none": no entropy; "detached": entropy without gradient (logging); "grad": entropy the loss may differentiate.
EntropyMode = Literal["none", "detached", "grad"]


@dataclass(frozen=True, slots=True)
class TokenLogprobs:
    logp: Tensor  # (B, T) float32, log p(input_ids[b, t] | earlier tokens of its sequence); 0 where not mask
    entropy: (
        Tensor | None
    )  # (B, T) float32, entropy of the distribution that predicted token t; None for "none"
    mask: Tensor  # (B, T) bool, positions that hold a value


def _chunk_stats(
    hidden: Tensor,  # (C, H)
    weight: Tensor,  # (V, H)
    bias: Tensor | None,  # (V,)
    targets: Tensor,  # (C,)
    temperature: float,
    entropy: EntropyMode,
    transform: LogitTransform | None,
) -> tuple[Tensor, Tensor]:
    """Log-prob of each target and the entropy, (C,) and (C,) (empty for "none"), of one chunk of positions."""
    logits = F.linear(hidden, weight, bias)  # (C, V) in the head's dtype
    if transform is not None:
        logits = transform(logits)
    logits = logits.float()  # (C, V) float32
    if temperature != 1.0:
        logits = logits / temperature
    logp_all = torch.log_softmax(logits, dim=-1)  # (C, V)
    del logits
    logp = logp_all.gather(-1, targets[:, None]).squeeze(-1)  # (C,)
    if entropy == "none":
        return logp, logp.new_empty(0)
    if entropy == "detached":
        with torch.no_grad():
            p_logp = logp_all.exp().mul_(logp_all)  # (C, V) p log p, in place: one (C, V) temporary
            return logp, -p_logp.sum(-1)
    return logp, -(logp_all.exp() * logp_all).sum(-1)  # (C,)


def head_logprobs(
    hidden: Tensor,
    weight: Tensor,
    targets: Tensor,
    *,
    bias: Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    entropy: EntropyMode = "detached",
    transform: LogitTransform | None = None,
) -> tuple[Tensor, Tensor | None]:
    """Log-probs of `targets` and entropies under the linear head `weight`, `chunk_size` rows at a time.

    hidden: (N, H) final hidden states (after the backbone's last norm), any dtype.
    weight: (V, H) the LM head (`model.lm_head.weight`); bias: (V,) or None.
    transform: what the model does to the head's logits (`logit_transform(model.config)`); None: nothing.
    targets: (N,) long, the token each row predicts.
    Returns logp (N,) float32 and entropy (N,) float32 (None for "none"). Differentiable in hidden, weight, bias
    when grad is enabled; each chunk is then checkpointed (see the module docstring for the memory bound).
    """
    if chunk_size < 1 or temperature <= 0:
        raise ValueError("need chunk_size >= 1 and temperature > 0")
    params = (hidden, weight) if bias is None else (hidden, weight, bias)
    use_checkpoint = torch.is_grad_enabled() and any(t.requires_grad for t in params)
    logps: list[Tensor] = []
    entropies: list[Tensor] = []
    for start in range(0, hidden.shape[0], chunk_size):
        h = hidden[start : start + chunk_size]  # (C, H)
        y = targets[start : start + chunk_size]  # (C,)
        if use_checkpoint:
            logp, ent = checkpoint(
                _chunk_stats,
                h,
                weight,
                bias,
                y,
                temperature,
                entropy,
                transform,
                use_reentrant=False,
                preserve_rng_state=False,
            )  # (C,), (C,)
        else:
            logp, ent = _chunk_stats(h, weight, bias, y, temperature, entropy, transform)
        logps.append(logp)
        entropies.append(ent)
    if not logps:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty, None if entropy == "none" else empty
    return torch.cat(logps), None if entropy == "none" else torch.cat(entropies)  # (N,), (N,)


def token_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor | None = None,
    position_ids: Tensor | None = None,
    *,
    target_mask: Tensor | None = None,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    entropy: EntropyMode = "detached",
) -> TokenLogprobs:
    """Per-token log-probs (and entropies) of `input_ids` (B, T) under a Hugging Face causal LM.

    Layouts:
      padded: `attention_mask` (B, T), 1 on real tokens, left or right padding (or both). Positions count real
        tokens from 0, as a generation engine numbers them, unless `position_ids` are given.
      packed: `attention_mask` None and `position_ids` (B, T) restarting at 0 at each sequence (from `pack`). A
        block-diagonal causal mask keeps sequences from attending to each other, and the first token of each
        sequence gets no log-prob: nothing is conditioned on the previous sequence.
      neither: every row is one unpadded sequence.
    target_mask: (B, T) bool, the only positions whose log-prob is wanted (e.g. completion tokens); the LM head then
      runs on those positions alone, which saves its cost on prompts and padding.
    Gradients reach the model through `logp` (and `entropy` when "grad"). See the module docstring for alignment.
    """
    B, T = input_ids.shape
    if attention_mask is not None:
        if attention_mask.shape != (B, T):
            raise ValueError(f"attention_mask must be 2D {(B, T)}, got {tuple(attention_mask.shape)}")
        real = attention_mask.bool()  # (B, T)
        mask = real.clone()
        mask[:, 0] = False
        mask[:, 1:] &= real[:, :-1]  # both the token and the one predicting it are real
        model_mask: Tensor | dict[str, Tensor] | None = attention_mask
        if position_ids is None:
            model_mask, position_ids = padded_inputs(attention_mask)
    elif position_ids is not None:
        mask = continues_sequence(position_ids)  # (B, T)
        model_mask = attention_mask_for(model, position_ids)  # (B, 1, T, T), one per layer type, or None
    else:
        mask = torch.ones(B, T, dtype=torch.bool, device=input_ids.device)
        mask[:, 0] = False
        model_mask = None
    if target_mask is not None:
        mask = mask & target_mask.bool()

    hidden = model.get_decoder()(
        input_ids=input_ids, attention_mask=model_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # (B, T, H)
    rows = hidden[:, :-1][mask[:, 1:]]  # (N, H) the state before each wanted token
    targets = input_ids[:, 1:][mask[:, 1:]]  # (N,)
    head = model.get_output_embeddings()
    transform = logit_transform(model.config)
    logp_flat, ent_flat = head_logprobs(
        rows,
        head.weight,
        targets,
        bias=head.bias,
        temperature=temperature,
        chunk_size=chunk_size,
        entropy=entropy,
        transform=None if transform.identity else transform,
    )
    logp = _scatter(logp_flat, mask)
    ent = None if ent_flat is None else _scatter(ent_flat, mask)
    return TokenLogprobs(logp=logp, entropy=ent, mask=mask)


def shared_prompt_logprobs(
    model: Any,
    input_ids: Tensor,
    attention_mask: Tensor,
    prompt_lengths: Tensor,
    *,
    temperature: float = 1.0,
    chunk_size: int = 1024,
    entropy: EntropyMode = "detached",
) -> TokenLogprobs:
    """`token_logprobs` of right-padded rows (B, T) at their completion tokens (after `prompt_lengths` (B,)), with
    each distinct prompt run once (`rlvr.models.packing.SharedPrompts`): the n responses of a GRPO group cost one
    prompt instead of n. Same results and layout as `token_logprobs(..., target_mask=completion_mask(...))`, to
    float rounding. Attention: `shared_attention` under sdpa; a dense (U, 1, L, L) mask under eager (softcapped
    gemma2) while it holds at most DENSE_LIMIT elements; otherwise, and under flash kernels, every row padded
    with its own copy of its prompt (`token_logprobs`)."""
    lengths = attention_mask.sum(-1).tolist()
    sequences = [input_ids[b, :n].tolist() for b, n in enumerate(lengths)]
    shared = share_prompts(sequences, prompt_lengths.tolist())
    device = input_ids.device
    sdpa = shared_attention.supported(model)
    if not sdpa and not (
        takes_4d_mask(model) and shared.input_ids.numel() * shared.input_ids.shape[1] <= DENSE_LIMIT
    ):  # a flash kernel takes no mask, and a dense one grows as L²: each row with its own prompt
        target = completion_mask(attention_mask, prompt_lengths)
        kwargs = {"temperature": temperature, "chunk_size": chunk_size, "entropy": entropy}
        return token_logprobs(model, input_ids, attention_mask, target_mask=target, **kwargs)  # type: ignore[arg-type]
    ids, positions = shared.input_ids.to(device), shared.position_ids.to(device)
    decoder = model.get_decoder()
    if sdpa:  # one SDPA call per prompt and per response, no (L, L) mask
        with shared_attention.active(model):
            out = decoder(
                input_ids=ids,
                position_ids=positions,
                use_cache=False,
                shared_spans=shared.spans,
            )
    else:  # eager (softcapped) attention: the dense mask
        masks = per_layer_type(
            model, lambda dtype, window: shared_prompt_mask(shared, dtype, window).to(device)
        )
        out = decoder(input_ids=ids, attention_mask=masks, position_ids=positions, use_cache=False)
    hidden = out.last_hidden_state  # (U, L, H)
    head = model.get_output_embeddings()
    transform = logit_transform(model.config)
    logp_flat, ent_flat = head_logprobs(
        # index_select, not [predictor]: a prompt's last state predicts every response's first token, and the
        # backward of indexing with repeated indices (index_put_ accumulate) sums in thread order on a CPU
        hidden.reshape(-1, hidden.shape[-1]).index_select(0, shared.predictor.to(device)),
        head.weight,
        shared.targets.to(device),
        bias=head.bias,
        temperature=temperature,
        chunk_size=chunk_size,
        entropy=entropy,
        transform=None if transform.identity else transform,
    )
    mask = completion_mask(attention_mask, prompt_lengths.to(device))  # (B, T), row by row as the targets
    ent = None if ent_flat is None else _scatter(ent_flat, mask)
    return TokenLogprobs(logp=_scatter(logp_flat, mask), entropy=ent, mask=mask)


class LogprobModel(torch.nn.Module):
    """`token_logprobs` of a causal LM as a module's forward, so that a wrapper acting in forward sees the call:
    FSDP's root unit (embeddings, final norm, LM head; `rlvr.train.sharding`) gathers its parameters there and
    reduces their gradients after backward. `lm` is the model itself (its parameters, not copies)."""

    def __init__(self, lm: Any) -> None:
        super().__init__()
        self.lm = lm

    def forward(
        self,
        input_ids: Tensor,
        attention_mask: Tensor | None = None,
        position_ids: Tensor | None = None,
        prompt_lengths: Tensor | None = None,
        **kwargs: Any,
    ) -> TokenLogprobs:
        """`token_logprobs`; with `prompt_lengths` (right-padded rows, completions wanted), `shared_prompt_logprobs`."""
        if prompt_lengths is not None:
            if attention_mask is None or position_ids is not None or "target_mask" in kwargs:
                raise ValueError(
                    "prompt_lengths takes right-padded rows: an attention mask, no positions, no target"
                )
            return shared_prompt_logprobs(self.lm, input_ids, attention_mask, prompt_lengths, **kwargs)
        return token_logprobs(self.lm, input_ids, attention_mask, position_ids, **kwargs)


def padded_inputs(attention_mask: Tensor) -> tuple[Tensor | None, Tensor | None]:
    """(attention mask, position ids) to run a padded (B, T) batch with. Right padding only: neither — causal
    attention alone never lets a real token see a pad, and positions count from 0 anyway (SDPA's is_causal
    kernels; explicit positions would repeat on the pads, which transformers may read as packed sequences).
    Otherwise the mask, and positions counting each row's real tokens from 0."""
    if right_padded(attention_mask):
        return None, None
    return attention_mask, (attention_mask.long().cumsum(-1) - 1).clamp(min=0)  # (B, T)


def right_padded(attention_mask: Tensor) -> bool:
    """Whether every row of (B, T) `attention_mask` is real tokens then padding (none on the left or inside)."""
    return bool(attention_mask[:, 0].all()) and bool((attention_mask[:, 1:] <= attention_mask[:, :-1]).all())


def _scatter(values: Tensor, mask: Tensor) -> Tensor:
    """(N,) values into a (B, T) float32 zero tensor at the N True positions of `mask`; differentiable."""
    out = values.new_zeros(mask.shape, dtype=torch.float32)  # (B, T)
    return out.masked_scatter(mask, values.float())


def completion_mask(attention_mask: Tensor, prompt_lengths: Tensor) -> Tensor:
    """(B, T) bool: real tokens after the first `prompt_lengths[b]` real tokens of row b (left or right padding).

    attention_mask: (B, T), 1 on real tokens; prompt_lengths: (B,) long, prompt tokens per row (each >= 1).
    """
    rank = attention_mask.long().cumsum(-1)  # (B, T) 1-based index among real tokens
    return attention_mask.bool() & (rank > prompt_lengths[:, None])


def extract_completions(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """The masked entries of each row, left-aligned: (B, C) values and (B, C) bool mask, C = most True in a row.

    values: (B, T); mask: (B, T) bool. With a completion mask, row b of the result is in the order of its
    completion tokens, like `Rollout.logprobs`; zero-padded on the right. Differentiable in `values`.
    """
    counts = mask.sum(-1)  # (B,)
    C = int(counts.max()) if counts.numel() else 0
    out_mask = torch.arange(C, device=mask.device)[None, :] < counts[:, None]  # (B, C)
    out = values.new_zeros(mask.shape[0], C).masked_scatter(out_mask, values[mask])  # (B, C)
    return out, out_mask
