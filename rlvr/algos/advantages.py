"""Advantage estimators: outcome advantages per response (GRPO family) and token-level GAE (PPO with a critic).

Outcome estimators take one scalar reward per response, `scores` (N,), and the group of each response, `index`
(N,) long: responses to the same prompt share an index. Groups need not be contiguous nor of equal size. They
return advantages (N,); the trainer broadcasts each over the response's tokens (`advantages[:, None]`).
`ADVANTAGES` maps a name to each, all called as `fn(scores, index, token_counts=...)`.

Group statistics are over the responses present in the call, so call these on the whole batch of rollouts
(every rank's responses to a prompt), never on a micro-batch or one rank's shard: a group split in two would
get two different baselines. `reinforce_pp_baseline` and GAE whiten over the whole batch, which has the same
requirement.

These functions know tensors only; no model, no config. Inputs are treated as constants (detached): an
advantage never carries gradient.
"""

from __future__ import annotations

from typing import Protocol

import torch
from torch import Tensor

GRPO_EPS = 1e-6  # added to the group std (verl, TRL)
WHITEN_EPS = 1e-8  # added to the batch variance before the square root (verl's masked_whiten)


class OutcomeAdvantage(Protocol):
    """The common signature of `ADVANTAGES`: scores (N,), index (N,) long, token_counts (N,) or None → (N,)."""

    def __call__(self, scores: Tensor, index: Tensor, *, token_counts: Tensor | None = None) -> Tensor: ...


def _as_float(scores: Tensor) -> Tensor:
    return (scores if scores.is_floating_point() else scores.float()).detach()


def _group_stats(scores: Tensor, index: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per response: its group's size n, mean, and unbiased variance Σ(r − mean)²/(n − 1) (0 when n = 1).

    scores: (N,) float; index: (N,) long. Returns three (N,) tensors, each entry the value of that response's group.
    """
    if scores.shape != index.shape or scores.dim() != 1:
        raise ValueError(
            f"scores and index must both be (N,), got {tuple(scores.shape)} and {tuple(index.shape)}"
        )
    _, group = torch.unique(index, return_inverse=True)  # (N,) dense group id in [0, G)
    G = int(group.max()) + 1 if group.numel() else 0
    count = scores.new_zeros(G).index_add_(0, group, torch.ones_like(scores))  # (G,)
    mean = scores.new_zeros(G).index_add_(0, group, scores) / count  # (G,)
    dev = scores - mean[group]  # (N,)
    sq = scores.new_zeros(G).index_add_(0, group, dev * dev)  # (G,)
    var = sq / (count - 1).clamp(min=1)  # (G,) unbiased; 0 for a singleton (its sq is 0)
    return count[group], mean[group], var[group]


def grpo(
    scores: Tensor,
    index: Tensor,
    *,
    token_counts: Tensor | None = None,
    norm_by_std: bool = True,
    eps: float = GRPO_EPS,
) -> Tensor:
    """GRPO (Shao et al. 2024, DeepSeekMath): A_i = (r_i − mean_g) / (std_g + eps), (N,).

    std_g is the unbiased sample std (divides by n − 1), as verl and TRL compute it (`torch.std`). A group whose
    rewards are all equal gets A = 0. A singleton group gets A = 0: it has no baseline. (verl departs here: it
    sets mean 0, std 1 for a singleton, so the response is trained on its raw reward.)
    `norm_by_std=False` gives r_i − mean_g, i.e. `dr_grpo`. `token_counts` is unused (group-local estimator).
    """
    del token_counts
    x = _as_float(scores)
    n, mean, var = _group_stats(x, index)
    adv = x - mean  # (N,)
    if norm_by_std:
        adv = adv / (var.sqrt() + eps)
    return torch.where(n > 1, adv, torch.zeros_like(adv))


def dr_grpo(scores: Tensor, index: Tensor, *, token_counts: Tensor | None = None) -> Tensor:
    """Dr. GRPO (Liu et al. 2025, "Understanding R1-Zero-Like Training"): A_i = r_i − mean_g, (N,).

    No division by the group std, which weights prompts that are nearly always right or wrong more heavily.
    A singleton group gets 0 (its mean is its reward). `token_counts` is unused (group-local estimator).
    """
    del token_counts
    x = _as_float(scores)
    _, mean, _ = _group_stats(x, index)
    return x - mean


def rloo(scores: Tensor, index: Tensor, *, token_counts: Tensor | None = None) -> Tensor:
    """RLOO (Ahmadian et al. 2024): A_i = r_i − mean_{j≠i} r_j = n/(n − 1) · (r_i − mean_g), (N,).

    The baseline leaves the response itself out, so it is independent of r_i. A singleton group has no other
    response to compare with and gets 0 (verl keeps the raw reward there). `token_counts` is unused.
    """
    del token_counts
    x = _as_float(scores)
    n, mean, _ = _group_stats(x, index)
    adv = (x - mean) * n / (n - 1).clamp(min=1)  # (N,)
    return torch.where(n > 1, adv, torch.zeros_like(adv))


def whiten(values: Tensor, weights: Tensor | None = None, *, eps: float = WHITEN_EPS) -> Tensor:
    """(x − m) / sqrt(v + eps) with the weighted mean m and unbiased weighted variance v of `values`.

    values: any shape; weights: same shape (or None for all ones), ≥ 0; a 0/1 mask or a count per entry. With
    W = Σw: m = Σ w x / W and v = Σ w (x − m)² / (W − 1), Bessel's correction over W as if each entry were
    repeated w times, which is verl's `masked_whiten` over tokens. With W ≤ 1 (one token) v is taken as 0.
    Entries of weight 0 are shifted and scaled too; mask them yourself.
    """
    x = _as_float(values)
    w = torch.ones_like(x) if weights is None else weights.detach().to(x.dtype)
    total = w.sum()
    if total <= 0:
        raise ValueError("whiten needs a positive total weight (at least one valid token)")
    mean = (w * x).sum() / total
    var = (w * (x - mean) ** 2).sum() / (total - 1).clamp(min=1)  # 0 when total ≤ 1: one token, no spread
    return (x - mean) * torch.rsqrt(var + eps)


def reinforce_pp_baseline(
    scores: Tensor,
    index: Tensor,
    *,
    token_counts: Tensor | None = None,
    eps: float = WHITEN_EPS,
) -> Tensor:
    """REINFORCE++-baseline (Hu et al. 2025): A = whiten(r_i − mean_g) over the whole batch, (N,).

    The paper and verl whiten over all valid tokens of the batch, after broadcasting each response's value to
    its tokens: a long response weighs more. Pass `token_counts` (N,), the number of valid (loss) tokens of
    each response, to get exactly that: the result equals `whiten` of the (N, T) broadcast matrix under the
    mask, at each valid token. Without `token_counts` the whitening is over responses (each weighs 1).
    A singleton group has r − mean_g = 0 before whitening.
    """
    centred = dr_grpo(scores, index)  # (N,)
    return whiten(centred, token_counts, eps=eps)


ADVANTAGES: dict[str, OutcomeAdvantage] = {
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "rloo": rloo,
    "reinforce_pp_baseline": reinforce_pp_baseline,
}


def last_token_rewards(scores: Tensor, mask: Tensor) -> Tensor:
    """(B, T) token rewards: each response's score at its last valid token, 0 elsewhere (PPO / GAE input).

    scores: (B,) float; mask: (B, T) bool. A row with no valid token gets no reward.
    """
    mask = mask.bool()
    T = mask.shape[1]
    positions = torch.arange(T, device=mask.device).expand_as(mask)  # (B, T)
    last = torch.where(mask, positions, -1).max(dim=1).values  # (B,) -1 if the row is empty
    out = torch.zeros(mask.shape, dtype=_as_float(scores).dtype, device=mask.device)  # (B, T)
    rows = torch.nonzero(last >= 0).squeeze(1)  # (B',)
    out[rows, last[rows]] = _as_float(scores)[rows]
    return out


def gae(
    token_rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    *,
    gamma: float = 1.0,
    lam: float = 1.0,
    whiten_advantages: bool = True,
) -> tuple[Tensor, Tensor]:
    """Generalized advantage estimation (Schulman et al. 2016) over response tokens: advantages, returns (B, T).

    token_rewards: (B, T) reward per token (`last_token_rewards`, minus a KL penalty: `kl.kl_in_reward`).
    values: (B, T) the critic's V at each token; mask: (B, T) bool, the response's valid tokens.
    Backwards along each row over valid tokens only:
        δ_t = r_t + γ V_next − V_t,   A_t = δ_t + γλ A_next,   returns_t = A_t + V_t,
    where "next" is the next *valid* token of the row; after the last valid token V_next = A_next = 0 (the
    episode ends), whatever `values` holds at padding. So right, left and mid-row gaps (e.g. tool output masked
    out of a multi-turn response) all link each token to the next one the policy generated; γ discounts once per
    generated token, not per position. Returns are computed before whitening. With `whiten_advantages`, the
    advantages are whitened over the valid tokens of the whole batch (`whiten`, unbiased variance, as verl).
    Both outputs are 0 at invalid positions.
    """
    if not token_rewards.shape == values.shape == mask.shape or token_rewards.dim() != 2:
        raise ValueError("token_rewards, values and mask must all be (B, T)")
    r = _as_float(token_rewards)
    v = _as_float(values).to(r.dtype)
    m = mask.bool()
    B, T = m.shape
    next_value = r.new_zeros(B)  # (B,) V of the next valid token
    next_adv = r.new_zeros(B)  # (B,) A of the next valid token
    adv = torch.zeros_like(r)  # (B, T)
    for t in range(T - 1, -1, -1):
        delta = r[:, t] + gamma * next_value - v[:, t]  # (B,)
        a = delta + gamma * lam * next_adv  # (B,)
        valid = m[:, t]  # (B,)
        adv[:, t] = torch.where(valid, a, 0.0)
        next_value = torch.where(valid, v[:, t], next_value)
        next_adv = torch.where(valid, a, next_adv)
    returns = torch.where(m, adv + v, 0.0)  # (B, T)
    if whiten_advantages:
        adv = torch.where(m, whiten(adv, m), 0.0)
    return adv, returns
