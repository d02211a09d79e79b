"""Per-token estimators of the KL divergence to a reference policy, and the PPO-style KL penalty in the reward.

With Δ = logp − ref_logp at a token sampled from the policy π (Schulman, "Approximating KL Divergence", 2020):
    k1 = Δ                  unbiased for KL(π ‖ π_ref), high variance, can be negative
    k2 = ½ Δ²               biased, low variance, ≥ 0
    k3 = e^{−Δ} + Δ − 1     unbiased for KL(π ‖ π_ref), low variance, ≥ 0 (GRPO, DeepSeek-R1; verl "low_var_kl")
As a loss term (GRPO: loss = pg + β · KL, aggregated like the policy loss with `rlvr.algos.losses.aggregate`) the
gradients differ from the values: on samples from π, E[∇k1] = E[∇ log π] = 0, so k1 in the loss does nothing in
expectation; E[∇k2] = ∇KL(π ‖ π_ref); E[∇k3] = E[(1 − π_ref/π) ∇ log π] = ∇KL(π_ref ‖ π), the forward KL.
In the reward (PPO, SimpleRL-Zero) the estimate is a constant: `kl_in_reward` subtracts β · KL per token.

Δ is clamped to ±20 before the exponential (e^20 ≈ 4.9e8, finite in float32). verl also clamps k3's value to
[−10, 10], which zeroes its gradient on tokens where the policy has moved far below the reference; we do not.
The entropy bonus is not here: it is −c · H per token through `aggregate` (see `rlvr.algos.losses`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from rlvr.algos.advantages import last_token_rewards

DELTA_CLAMP = 20.0  # |logp − ref_logp| bound before exp


def k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """Δ = logp − ref_logp, (B, T)."""
    return logp - ref_logp


def k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """½ Δ², (B, T)."""
    delta = logp - ref_logp  # (B, T)
    return 0.5 * delta * delta


def k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """e^{−Δ} + Δ − 1 with Δ clamped to ±20, (B, T). Equals ρ − log ρ − 1 for ρ = π_ref/π: ≥ 0, 0 iff Δ = 0."""
    delta = (logp - ref_logp).clamp(-DELTA_CLAMP, DELTA_CLAMP)  # (B, T)
    return torch.exp(-delta) + delta - 1.0


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": k1, "k2": k2, "k3": k3}


def kl_in_reward(rewards: Tensor, kl: Tensor, mask: Tensor, beta: float) -> Tensor:
    """PPO's KL-penalised token rewards: r_t − β · KL_t at valid tokens, 0 elsewhere, (B, T), no gradient.

    rewards: (B,) one score per response, placed at its last valid token (`last_token_rewards`), or (B, T)
    token rewards already; kl: (B, T) a per-token estimate (`KL_ESTIMATORS`, usually k1 here); mask: (B, T) bool.
    The result feeds `rlvr.algos.advantages.gae`; for an outcome estimator sum it over tokens first.
    """
    mask = mask.bool()
    token_rewards = last_token_rewards(rewards, mask) if rewards.dim() == 1 else rewards.detach().float()
    penalised = token_rewards - beta * kl.detach().to(token_rewards.dtype)  # (B, T)
    return torch.where(mask, penalised, 0.0)
