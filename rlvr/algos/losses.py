"""The clipped policy-gradient loss per token, and its aggregation to one scalar that survives gradient accumulation.

`policy_loss` gives a (B, T) loss per token and clipping statistics; `aggregate` turns any per-token term (the
policy loss, a KL term from `rlvr.algos.kl`, an entropy bonus) into a scalar. The total of REFERENCE §3,
    loss = pg + β_kl · KL − c_ent · H,
is three `aggregate` calls with the same mode and normalizer, or one on the combined (B, T) matrix:
`aggregate(pg + beta * kl - c_ent * entropy, mask, mode, normalizer=n)`. The entropy bonus needs no function of
its own: it is −c_ent times the per-token entropy (`rlvr.models.logprobs.token_logprobs(..., entropy="grad")`).

Aggregation contract. A mini-batch (one optimizer step) is split into micro-batches on each of W data-parallel
ranks. `normalizer(masks, mode, max_len)` is computed once per mini-batch from the masks of all its micro-batches
on one rank, then summed across ranks (all-reduce SUM); `aggregate` returns the micro-batch's *share* of the
full-batch loss, (Σ of its rows' contributions) / normalizer. Summing `aggregate` over every micro-batch of every
rank, or accumulating its gradients with `.backward()`, gives exactly the full-batch loss and gradient, whatever
the split. DDP and FSDP *average* gradients over ranks, so pass `world_size=W` there: the share is multiplied by W
and the average is again the full-batch gradient. Dividing each micro-batch by its own token count instead (a
micro-batch mean) weights the tokens of short micro-batches more; verl shipped that bug for token-mean (issue
#5625).

Rows are sequences: the sequence modes need one response per row (padded layout); unpack a packed layout first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

import torch
from torch import Tensor

# token-mean: Σ_{i,t} L / Σ tokens (DAPO). seq-mean-token-mean: mean_i (Σ_t L / |o_i|) (GRPO paper).
# seq-mean-token-sum-norm: Σ_{i,t} L / (num_seqs · L_max) (Dr. GRPO).
AggMode = Literal["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"]
AGG_MODES: tuple[str, ...] = get_args(AggMode)

LOG_RATIO_CLAMP = 20.0  # |logp − old_logp| is clamped before exp: e^20 ≈ 4.9e8 is finite in float32


@dataclass(frozen=True, slots=True)
class PolicyLossStats:
    """Sums over a micro-batch's valid tokens, 0-d float32 tensors without gradient.

    Sums, not means, so that micro-batches add (`+`) and ranks all-reduce (SUM) exactly; `means()` divides by
    `tokens` at the end. The clip counts only tokens where the clipped branch wins the max (its gradient is 0).
    """

    tokens: Tensor  # () valid tokens
    clip_low: Tensor  # () tokens with A < 0 and ρ < 1 − ε_low: held at 1 − ε_low
    clip_high: Tensor  # () tokens with A > 0 and ρ > 1 + ε_high: held at 1 + ε_high
    dual_clip: Tensor  # () tokens with A < 0 and the loss capped at −c·A (ρ > c)
    ppo_kl: Tensor  # () Σ (old_logp − logp), the k1 estimate of KL(π_old ‖ π) times tokens

    def __add__(self, other: PolicyLossStats) -> PolicyLossStats:
        return PolicyLossStats(
            tokens=self.tokens + other.tokens,
            clip_low=self.clip_low + other.clip_low,
            clip_high=self.clip_high + other.clip_high,
            dual_clip=self.dual_clip + other.dual_clip,
            ppo_kl=self.ppo_kl + other.ppo_kl,
        )

    def means(self) -> dict[str, float]:
        """Per-token means for logging: clip fractions and ppo_kl; 0 when there are no tokens."""
        n = max(float(self.tokens), 1.0)
        return {
            "clip_frac_low": float(self.clip_low) / n,
            "clip_frac_high": float(self.clip_high) / n,
            "dual_clip_frac": float(self.dual_clip) / n,
            "ppo_kl": float(self.ppo_kl) / n,
        }


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = 3.0,
) -> tuple[Tensor, PolicyLossStats]:
    """PPO's clipped surrogate per token (Schulman et al. 2017), with DAPO's clip-higher and dual clip.

    logp, old_logp: (B, T) log-probs of the sampled tokens under the current policy and the one that sampled
    them; advantages: (B, T), or (B,) broadcast over tokens; mask: (B, T) bool, the tokens that train.
        ρ = exp(clamp(logp − old_logp, −20, 20))
        L = max(−A·ρ, −A·clip(ρ, 1 − ε_low, 1 + ε_high))
        L = min(L, −c·A)  where A < 0   (dual clip, Ye et al. 2020; c = `dual_clip` > 1, None to disable)
    DAPO's clip-higher is clip_low=0.2, clip_high=0.28. Without the dual clip a negative-advantage token whose
    ratio has grown large pushes an unbounded loss; the cap makes its gradient 0 beyond ρ = c.
    Returns the loss (B, T), 0 at masked positions (differentiable in `logp` only), and `PolicyLossStats`.
    """
    if dual_clip is not None and dual_clip <= 1.0:
        raise ValueError(f"dual_clip must be > 1 (or None), got {dual_clip}")
    if advantages.dim() == 1:
        advantages = advantages[:, None]  # (B, 1)
    adv = advantages.detach().to(logp.dtype).expand_as(logp)  # (B, T)
    mask = mask.bool()
    log_ratio = (logp - old_logp.detach()).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)  # (B, T)
    ratio = log_ratio.exp()  # (B, T)
    unclipped = -adv * ratio  # (B, T)
    clipped = -adv * ratio.clamp(1.0 - clip_low, 1.0 + clip_high)  # (B, T)
    loss = torch.maximum(unclipped, clipped)  # (B, T)
    clip_active = clipped > unclipped  # (B, T) the clipped branch wins: zero gradient
    if dual_clip is not None:
        cap = -dual_clip * adv  # (B, T)
        dual_active = (adv < 0) & (loss > cap)  # (B, T)
        loss = torch.where(dual_active, cap, loss)
    else:
        dual_active = torch.zeros_like(mask)
    loss = torch.where(mask, loss, 0.0)  # (B, T)

    with torch.no_grad():
        f = mask.float()  # (B, T)
        stats = PolicyLossStats(
            tokens=f.sum(),
            clip_low=(f * (clip_active & (ratio < 1.0))).sum(),
            clip_high=(f * (clip_active & (ratio > 1.0))).sum(),
            dual_clip=(f * dual_active).sum(),
            ppo_kl=torch.where(mask, old_logp - logp, 0.0).float().sum(),
        )
    return loss, stats


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, *, clip: float | None = 0.2
) -> tuple[Tensor, Tensor]:
    """PPO's clipped value loss per token (the critic's; OpenRLHF and verl): ((B, T) loss, () clipped count).

    values: (B, T) the critic's V now; old_values: (B, T) V when the rollouts were scored; returns: (B, T) GAE
    returns (targets); mask: (B, T) bool.
        V_clip = old + clamp(V − old, −clip, clip)
        L = ½ max((V − R)², (V_clip − R)²)
    so a value cannot move more than `clip` from the one the advantages were computed with in one update
    (None: L = ½ (V − R)²). The count is of valid tokens where the clipped branch is the larger (no gradient).
    Aggregate it like the policy loss (`aggregate`), with the same mode and normaliser.
    """
    mask = mask.bool()
    target = returns.detach().to(values.dtype)
    unclipped = (values - target) ** 2  # (B, T)
    if clip is None:
        loss, clipped_count = 0.5 * unclipped, values.new_zeros(())
    else:
        old = old_values.detach().to(values.dtype)
        clipped = (old + (values - old).clamp(-clip, clip) - target) ** 2  # (B, T)
        loss = 0.5 * torch.maximum(unclipped, clipped)
        clipped_count = (mask & (clipped > unclipped)).sum().float().detach()
    return torch.where(mask, loss, 0.0), clipped_count


def normalizer(masks: Sequence[Tensor], mode: AggMode, max_len: int | None = None) -> float:
    """The denominator of the full-batch loss, from the masks (B_k, T_k) bool of all micro-batches of one rank.

    token-mean: valid tokens. seq-mean-token-mean: sequences with at least one valid token (a fully masked
    response, e.g. an overlong one filtered out, has no mean and does not count). seq-mean-token-sum-norm:
    every row (fully masked ones too: Dr. GRPO's denominator is the constant G · L_max) times `max_len`, the
    maximum response length setting in tokens, not the longest response in the batch.
    All-reduce (SUM) the result across data-parallel ranks before passing it to `aggregate`.
    """
    _check_mode(mode)
    if mode == "token-mean":
        return float(sum(int(m.bool().sum()) for m in masks))
    if mode == "seq-mean-token-mean":
        return float(sum(int(m.bool().any(dim=-1).sum()) for m in masks))
    if max_len is None or max_len <= 0:
        raise ValueError("seq-mean-token-sum-norm needs max_len, the maximum response length in tokens")
    longest = max((int(m.bool().sum(dim=-1).max()) for m in masks if m.numel()), default=0)
    if longest > max_len:
        raise ValueError(f"a response has {longest} valid tokens, more than max_len={max_len}")
    return float(sum(m.shape[0] for m in masks) * max_len)


def aggregate(
    loss: Tensor,
    mask: Tensor,
    mode: AggMode,
    *,
    normalizer: float,
    world_size: int = 1,
) -> Tensor:
    """This micro-batch's share of the full-batch loss: Σ_rows contribution / `normalizer` · `world_size`, ().

    loss: (B, T) per-token loss; mask: (B, T) bool. A row contributes Σ_t L (token-mean, seq-mean-token-sum-norm)
    or Σ_t L / |o_i| (seq-mean-token-mean). `normalizer` is the global one from `normalizer()` (see the module
    docstring); with one micro-batch on one rank it makes this the plain full-batch loss. `world_size` = the
    number of ranks whose gradients DDP/FSDP averages, so the averaged gradient is the full-batch gradient.
    """
    _check_mode(mode)
    if normalizer <= 0:
        raise ValueError(f"normalizer must be positive, got {normalizer} (no valid tokens in the batch?)")
    mask = mask.bool()
    masked = torch.where(mask, loss, 0.0)  # (B, T)
    if mode == "seq-mean-token-mean":
        per_seq = masked.sum(dim=-1) / mask.sum(dim=-1).clamp(min=1)  # (B,) token mean; 0 for an empty row
        total = per_seq.sum()
    else:
        total = masked.sum()
    return total * (world_size / normalizer)


def _check_mode(mode: str) -> None:
    if mode not in AGG_MODES:
        raise ValueError(f"unknown aggregation mode {mode!r}; choose from {AGG_MODES}")
