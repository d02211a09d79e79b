"""rlvr.algos against hand-computed numbers: advantages, GAE, the clipped loss, KL estimators, aggregation."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor

from rlvr.algos import ADVANTAGES, KL_ESTIMATORS, aggregate, gae, kl_in_reward, last_token_rewards, normalizer
from rlvr.algos import policy_loss as policy_loss_fn
from rlvr.algos.advantages import dr_grpo, grpo, reinforce_pp_baseline, rloo, whiten
from rlvr.algos.losses import AggMode, value_loss

T_ = torch.tensor
ATOL = 1e-5


def close(actual: Tensor, expected: object, atol: float = ATOL, rtol: float = 0.0) -> None:
    torch.testing.assert_close(actual.double(), T_(expected, dtype=torch.float64), atol=atol, rtol=rtol)


# Groups need not be contiguous: group 7 at positions 0, 2, 4 with rewards [1, 0, 1]; group 3 at 1, 3, 6 with
# [1, 1, 1] (all equal); group 9 a singleton with reward 5.
INDEX = T_([7, 3, 7, 3, 7, 9, 3])
SCORES = T_([1.0, 1.0, 0.0, 1.0, 1.0, 5.0, 1.0])


# ---------------------------------------------------------------- outcome advantages


def test_grpo_one_group() -> None:
    # [1, 0, 0, 1]: mean 0.5, unbiased var (4 · 0.25)/3 = 1/3, std 1/√3; ±0.5 · √3 = ±0.8660254 (eps 1e-6 shifts <2e-6)
    adv = grpo(T_([1.0, 0.0, 0.0, 1.0]), T_([0, 0, 0, 0]))
    close(adv, [0.8660254, -0.8660254, -0.8660254, 0.8660254])


def test_grpo_scattered_groups_equal_rewards_and_singleton() -> None:
    # group 7 [1, 0, 1]: mean 2/3, deviations [1/3, -2/3, 1/3], var (1/9 + 4/9 + 1/9)/2 = 1/3, std 1/√3
    #   → [√3/3, -2√3/3, √3/3] = [0.5773503, -1.1547005, 0.5773503]; group 3 all equal → 0; singleton → 0
    close(grpo(SCORES, INDEX), [0.5773503, 0.0, -1.1547005, 0.0, 0.5773503, 0.0, 0.0])
    close(grpo(SCORES, INDEX, norm_by_std=False), [1 / 3, 0.0, -2 / 3, 0.0, 1 / 3, 0.0, 0.0])


def test_dr_grpo() -> None:
    close(dr_grpo(SCORES, INDEX), [1 / 3, 0.0, -2 / 3, 0.0, 1 / 3, 0.0, 0.0])
    close(dr_grpo(T_([1.0, 0.0, 0.0, 1.0]), T_([0, 0, 0, 0])), [0.5, -0.5, -0.5, 0.5])


def test_rloo() -> None:
    # [1, 0, 0, 1]: 1 - (0+0+1)/3 = 2/3; 0 - (1+0+1)/3 = -2/3
    close(rloo(T_([1.0, 0.0, 0.0, 1.0]), T_([0, 0, 0, 0])), [2 / 3, -2 / 3, -2 / 3, 2 / 3])
    # group 7 [1, 0, 1]: 1 - (0+1)/2 = 0.5; 0 - (1+1)/2 = -1; group 3 → 0; singleton → 0
    close(rloo(SCORES, INDEX), [0.5, 0.0, -1.0, 0.0, 0.5, 0.0, 0.0])


def test_integer_scores_and_no_gradient() -> None:
    scores = T_([1.0, 0.0], requires_grad=True)
    assert not grpo(scores, T_([0, 0])).requires_grad
    close(grpo(T_([1, 0]), T_([0, 0])), [0.7071063, -0.7071063])  # ±0.5 / (√0.5 + 1e-6)


REINFORCE_INDEX = T_([0, 0, 1, 1])
REINFORCE_SCORES = T_([1.0, 0.0, 1.0, 1.0])  # centred: [0.5, -0.5, 0, 0]


def test_reinforce_pp_baseline_over_responses() -> None:
    # mean 0, unbiased var (0.25 + 0.25)/3 = 1/6, std 0.4082483 → ±0.5/0.4082483 = ±1.2247449
    close(reinforce_pp_baseline(REINFORCE_SCORES, REINFORCE_INDEX), [1.2247449, -1.2247449, 0.0, 0.0])


def test_reinforce_pp_baseline_over_tokens() -> None:
    # token counts [3, 1, 2, 2], W = 8: mean (3·0.5 - 0.5)/8 = 0.125; deviations [0.375, -0.625, -0.125, -0.125]
    # var (3·0.140625 + 0.390625 + 4·0.015625)/7 = 0.875/7 = 0.125, std 0.3535534
    counts = T_([3, 1, 2, 2])
    adv = reinforce_pp_baseline(REINFORCE_SCORES, REINFORCE_INDEX, token_counts=counts)
    close(adv, [1.0606602, -1.7677670, -0.3535534, -0.3535534])


def test_reinforce_pp_baseline_equals_whitening_the_broadcast_token_matrix() -> None:
    g = torch.Generator().manual_seed(0)
    N, T = 12, 9
    scores = torch.randint(0, 2, (N,), generator=g).float()
    index = torch.arange(N) % 4
    counts = torch.randint(1, T + 1, (N,), generator=g)
    mask = torch.arange(T)[None, :] < counts[:, None]  # (N, T) right-padded
    centred = scores - T_([scores[index == i].mean() for i in range(4)])[index]  # (N,)
    tokens = centred[:, None].expand(N, T)[mask]  # every valid token's value
    expected = (tokens - tokens.mean()) / tokens.std()  # torch.std: unbiased over tokens
    adv = reinforce_pp_baseline(scores, index, token_counts=counts)  # (N,)
    torch.testing.assert_close(adv[:, None].expand(N, T)[mask], expected, atol=1e-5, rtol=0)
    # weighting by tokens matters: over responses the answer differs
    assert not torch.allclose(reinforce_pp_baseline(scores, index), adv, atol=1e-3)


def test_whiten_weighted() -> None:
    close(whiten(T_([1.0, 2.0, 3.0])), [-1.0, 0.0, 1.0])  # mean 2, var (1 + 0 + 1)/2 = 1
    # weights [2, 0, 1]: W 3, mean (2 + 4)/3 = 2, var (2·1 + 1·4)/2 = 3 → [-1, 98, 2]/√3
    close(whiten(T_([1.0, 100.0, 4.0]), T_([2.0, 0.0, 1.0])), [-0.5773503, 56.5803226, 1.1547005])
    with pytest.raises(ValueError):
        whiten(T_([1.0]), T_([0.0]))


def test_advantages_dict_common_signature() -> None:
    assert set(ADVANTAGES) == {"grpo", "dr_grpo", "rloo", "reinforce_pp_baseline"}
    for name, fn in ADVANTAGES.items():
        adv = fn(SCORES, INDEX, token_counts=T_([1, 2, 3, 4, 5, 6, 7]))
        assert adv.shape == (7,) and torch.isfinite(adv).all(), name


# ---------------------------------------------------------------- GAE

REWARDS_3 = T_([[0.0, 0.0, 1.0]])
VALUES_3 = T_([[0.5, 0.6, 0.7]])
MASK_3 = T_([[True, True, True]])


def test_gae_gamma_1_lam_1_is_return_minus_value() -> None:
    # δ2 = 1 - 0.7 = 0.3; δ1 = 0.7 - 0.6 = 0.1; δ0 = 0.6 - 0.5 = 0.1; A = [0.5, 0.4, 0.3] = 1 - V; returns 1
    adv, ret = gae(REWARDS_3, VALUES_3, MASK_3, gamma=1.0, lam=1.0, whiten_advantages=False)
    close(adv, [[0.5, 0.4, 0.3]])
    close(ret, [[1.0, 1.0, 1.0]])


def test_gae_discounted() -> None:
    # γ 0.9, λ 0.95, γλ 0.855. A2 = 1 - 0.7 = 0.3
    # δ1 = 0.9·0.7 - 0.6 = 0.03, A1 = 0.03 + 0.855·0.3 = 0.2865
    # δ0 = 0.9·0.6 - 0.5 = 0.04, A0 = 0.04 + 0.855·0.2865 = 0.2849575; returns = A + V
    adv, ret = gae(REWARDS_3, VALUES_3, MASK_3, gamma=0.9, lam=0.95, whiten_advantages=False)
    close(adv, [[0.2849575, 0.2865, 0.3]])
    close(ret, [[0.7849575, 0.8865, 1.0]])


def test_gae_right_padding_and_gaps_ignore_values_and_rewards_off_mask() -> None:
    rewards = T_([[0.0, 0.0, 1.0], [0.0, 2.0, 5.0], [0.0, 5.0, 1.0]])
    values = T_([[0.5, 0.6, 0.7], [0.2, 0.4, 99.0], [0.5, 99.0, 0.7]])
    mask = T_([[True, True, True], [True, True, False], [True, False, True]])
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=0.95, whiten_advantages=False)
    # row 1 ends at t=1 (V beyond = 0): A1 = 2 - 0.4 = 1.6; δ0 = 0.9·0.4 - 0.2 = 0.16, A0 = 0.16 + 0.855·1.6 = 1.528
    # row 2 skips t=1: A2 = 1 - 0.7 = 0.3; δ0 = 0.9·0.7 - 0.5 = 0.13, A0 = 0.13 + 0.855·0.3 = 0.3865
    close(adv, [[0.2849575, 0.2865, 0.3], [1.528, 1.6, 0.0], [0.3865, 0.0, 0.3]])
    close(ret, [[0.7849575, 0.8865, 1.0], [1.728, 2.0, 0.0], [0.8865, 0.0, 1.0]])
    white, ret_w = gae(rewards, values, mask, gamma=0.9, lam=0.95)
    valid = adv[mask]
    close(white[mask], ((valid - valid.mean()) / valid.std()).tolist())  # over the 7 valid tokens, unbiased
    assert (white[~mask] == 0).all()
    torch.testing.assert_close(ret_w, ret)  # returns come from the unwhitened advantages


def test_last_token_rewards() -> None:
    mask = T_([[True, True, False], [False, False, False], [False, True, True]])
    close(last_token_rewards(T_([1.0, 2.0, 3.0]), mask), [[0, 1, 0], [0, 0, 0], [0, 0, 3]])


# ---------------------------------------------------------------- policy loss

# (A, ρ) per token with ε_low 0.2, ε_high 0.28, c 3:
#  A=+1 ρ=1.5  → max(-1.5, -1.28) = -1.28, clip high, grad 0
#  A=+1 ρ=0.5  → max(-0.5, -0.8)  = -0.5,  grad -Aρ = -0.5
#  A=-1 ρ=0.5  → max(0.5, 0.8)    = 0.8,   clip low, grad 0
#  A=-1 ρ=2    → max(2, 1.28) = 2 < 3,     grad 2
#  A=-1 ρ=4    → max(4, 1.28) = 4 → min(4, 3) = 3, dual clip, grad 0
#  A=+2 ρ=1.1  → -2.2 both,                grad -2.2
#  A=.5 ρ=1    → masked: 0
#  A=-.5 ρ=e^.1 → 0.5·1.1051709 = 0.5525855, grad 0.5525855
ADV = T_([[1.0, 1.0, -1.0, -1.0], [-1.0, 2.0, 0.5, -0.5]])
LOG_RATIO = T_(
    [[math.log(1.5), math.log(0.5), math.log(0.5), math.log(2.0)], [math.log(4.0), math.log(1.1), 0.0, 0.1]]
)
MASK = T_([[True, True, True, True], [True, True, False, True]])
OLD = torch.full((2, 4), -1.0)


def test_policy_loss_table_and_gradients() -> None:
    logp = (OLD + LOG_RATIO).requires_grad_(True)
    loss, stats = policy_loss_fn(logp, OLD, ADV, MASK, clip_low=0.2, clip_high=0.28, dual_clip=3.0)
    close(loss, [[-1.28, -0.5, 0.8, 2.0], [3.0, -2.2, 0.0, 0.5525855]])
    loss.sum().backward()
    assert logp.grad is not None
    close(logp.grad, [[0.0, -0.5, 0.0, 2.0], [0.0, -2.2, 0.0, 0.5525855]])
    assert (float(stats.tokens), float(stats.clip_low), float(stats.clip_high), float(stats.dual_clip)) == (
        7,
        1,
        1,
        1,
    )
    # ppo_kl = -Σ log ρ over valid = -(ln 1.5 + 2 ln 0.5 + ln 2 + ln 4 + ln 1.1 + 0.1) = -1.2939223
    close(stats.ppo_kl, -1.2939223)
    assert not stats.ppo_kl.requires_grad
    m = stats.means()
    assert m["clip_frac_low"] == pytest.approx(1 / 7) and m["ppo_kl"] == pytest.approx(
        -1.2939223 / 7, abs=1e-6
    )


def test_policy_loss_without_dual_clip_and_symmetric_clip() -> None:
    logp = (OLD + LOG_RATIO).requires_grad_(True)
    loss, stats = policy_loss_fn(logp, OLD, ADV, MASK, clip_low=0.2, clip_high=0.2, dual_clip=None)
    # first token now held at 1.2; the ρ=4 token keeps its full loss 4 and gradient 4
    close(loss, [[-1.2, -0.5, 0.8, 2.0], [4.0, -2.2, 0.0, 0.5525855]])
    loss.sum().backward()
    assert logp.grad is not None
    close(logp.grad, [[0.0, -0.5, 0.0, 2.0], [4.0, -2.2, 0.0, 0.5525855]])
    assert float(stats.dual_clip) == 0 and float(stats.clip_high) == 1


def test_policy_loss_broadcasts_outcome_advantages_and_clamps_the_ratio() -> None:
    logp = T_([[-1.0, 29.0]])  # log ratio 30 → clamped to 20
    old = T_([[-1.0, -1.0]])
    loss, _ = policy_loss_fn(logp, old, T_([-1.0]), T_([[True, True]]), dual_clip=None)
    close(loss, [[1.0, math.exp(20.0)]], rtol=1e-6)
    assert torch.isfinite(loss).all()
    with pytest.raises(ValueError):
        policy_loss_fn(logp, old, T_([-1.0]), T_([[True, True]]), dual_clip=1.0)


def test_stats_add_across_micro_batches() -> None:
    logp = OLD + LOG_RATIO
    _, full = policy_loss_fn(logp, OLD, ADV, MASK, clip_high=0.28)
    _, a = policy_loss_fn(logp[:1], OLD[:1], ADV[:1], MASK[:1], clip_high=0.28)
    _, b = policy_loss_fn(logp[1:], OLD[1:], ADV[1:], MASK[1:], clip_high=0.28)
    assert (a + b).means() == pytest.approx(full.means())


# ---------------------------------------------------------------- KL


def test_kl_estimators_values_and_gradients() -> None:
    delta = T_([[0.0, 1.0, -1.0, 0.5]])
    logp = delta.clone().requires_grad_(True)
    ref = torch.zeros_like(delta)
    close(KL_ESTIMATORS["k1"](logp, ref), [[0.0, 1.0, -1.0, 0.5]])
    close(KL_ESTIMATORS["k2"](logp, ref), [[0.0, 0.5, 0.5, 0.125]])
    # e^-Δ + Δ - 1: e^-1 = 0.3678794; e - 2 = 0.7182818; e^-0.5 - 0.5 = 0.1065307
    k3 = KL_ESTIMATORS["k3"](logp, ref)
    close(k3, [[0.0, 0.3678794, 0.7182818, 0.1065307]])
    k3.sum().backward()
    assert logp.grad is not None
    close(logp.grad, [[0.0, 0.6321206, -1.7182818, 0.3934693]])  # 1 - e^-Δ


def test_k3_clamps_delta() -> None:
    k3 = KL_ESTIMATORS["k3"](T_([30.0, -30.0]), T_([0.0, 0.0]))
    close(k3, [19.0, math.exp(20.0) - 21.0], rtol=1e-6)  # as if Δ = ±20


def test_kl_in_reward() -> None:
    kl = T_([[0.1, 0.2, 0.3], [0.4, 0.5, 9.0]], requires_grad=True)
    mask = T_([[True, True, True], [True, True, False]])
    # score at the last valid token, minus 0.1·KL per valid token
    out = kl_in_reward(T_([1.0, -0.5]), kl, mask, beta=0.1)
    close(out, [[-0.01, -0.02, 0.97], [-0.04, -0.55, 0.0]])
    assert not out.requires_grad
    token = kl_in_reward(T_([[0.0, 0.0, 1.0], [0.0, -0.5, 7.0]]), kl, mask, beta=0.1)
    close(token, [[-0.01, -0.02, 0.97], [-0.04, -0.55, 0.0]])


def test_value_loss_clipped_table_and_gradients() -> None:
    values = T_([[1.0, 0.5, -0.3], [2.0, 0.0, 9.0]], requires_grad=True)
    old = T_([[0.9, 0.0, 0.0], [1.0, 0.1, 0.0]])
    returns = T_([[1.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    mask = T_([[True, True, True], [True, True, False]])
    loss, clipped = value_loss(values, old, returns, mask, clip=0.2)
    # (0,1): V moved 0.5 from old, held at 0.2: ½ max(0.25, 0.64) = 0.32, the clipped branch (no gradient).
    # (0,2): V_clip = -0.2: ½ max(1.69, 1.44) = 0.845. (1,0): V_clip = 1.2: ½ max(1, 0.04) = 0.5. (1,2) masked.
    close(loss, [[0.0, 0.32, 0.845], [0.5, 0.0, 0.0]])
    assert float(clipped) == 1.0
    loss.sum().backward()
    assert values.grad is not None
    close(values.grad, [[0.0, 0.0, -1.3], [1.0, 0.0, 0.0]])
    plain, none_clipped = value_loss(values, old, returns, mask, clip=None)
    close(plain, [[0.0, 0.125, 0.845], [0.5, 0.0, 0.0]])
    assert float(none_clipped) == 0.0


# ---------------------------------------------------------------- aggregation


def test_aggregate_hand_example() -> None:
    loss = T_([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    mask = T_([[True, True, True], [True, False, False], [False, False, False]])
    # token-mean: (1+2+3+4)/4 = 2.5. seq-mean-token-mean: rows 2 and 4, empty row left out → 3.
    # Dr. GRPO with L_max 4: 10 / (3 rows · 4) = 0.8333333 (the empty row counts in G)
    expected = {
        "token-mean": (4.0, 2.5),
        "seq-mean-token-mean": (2.0, 3.0),
        "seq-mean-token-sum-norm": (12.0, 10 / 12),
    }
    for mode, (norm, value) in expected.items():
        n = normalizer([mask], mode, max_len=4)  # type: ignore[arg-type]
        assert n == norm, mode
        close(aggregate(loss, mask, mode, normalizer=n), value)  # type: ignore[arg-type]


def test_normalizer_errors() -> None:
    mask = T_([[True, True, True]])
    with pytest.raises(ValueError):
        normalizer([mask], "seq-mean-token-sum-norm")  # no max_len
    with pytest.raises(ValueError):
        normalizer([mask], "seq-mean-token-sum-norm", max_len=2)  # a response longer than L_max
    with pytest.raises(ValueError):
        normalizer([mask], "sum")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        aggregate(torch.zeros(1, 3), mask, "token-mean", normalizer=0.0)


def _batch() -> tuple[Tensor, Tensor, list[slice]]:
    """8 responses, T = 6, lengths chosen so the 4 micro-batches (2, 1, 3, 2 rows) hold 11, 1, 7, 7 tokens.

    loss[i, t] = i + 1 + 0.1·t: rows differ, so any unequal weighting of rows or tokens shows.
    """
    lengths = T_([6, 5, 1, 2, 2, 3, 6, 1])
    mask = torch.arange(6)[None, :] < lengths[:, None]  # (8, 6)
    loss = torch.arange(1.0, 9.0)[:, None] + 0.1 * torch.arange(6.0)[None, :]  # (8, 6)
    return loss, mask, [slice(0, 2), slice(2, 3), slice(3, 6), slice(6, 8)]


def _full_batch(loss: Tensor, mask: Tensor, mode: str, max_len: int) -> Tensor:
    """The full-batch definitions, written directly."""
    if mode == "token-mean":
        return loss[mask].mean()
    if mode == "seq-mean-token-mean":
        return torch.stack([row[m].mean() for row, m in zip(loss, mask, strict=True)]).mean()
    return loss[mask].sum() / (loss.shape[0] * max_len)


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_micro_batches_sum_to_the_full_batch(mode: AggMode) -> None:
    loss, mask, parts = _batch()
    full = _full_batch(loss, mask, mode, max_len=8)
    n = normalizer([mask[p] for p in parts], mode, max_len=8)
    summed = sum(aggregate(loss[p], mask[p], mode, normalizer=n) for p in parts)
    torch.testing.assert_close(summed, full)
    # the bug this contract prevents: each micro-batch normalised by itself, then averaged
    naive = torch.stack(
        [aggregate(loss[p], mask[p], mode, normalizer=normalizer([mask[p]], mode, max_len=8)) for p in parts]
    ).mean()
    assert abs(float(naive - full)) > 1e-2


@pytest.mark.parametrize("mode", ["token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"])
def test_gradient_accumulation_over_ranks_matches_full_batch(mode: AggMode) -> None:
    loss, mask, parts = _batch()
    theta = torch.ones(8, 6, requires_grad=True)  # the per-token loss is theta · loss
    _full_batch(theta * loss, mask, mode, max_len=8).backward()
    assert theta.grad is not None
    expected = theta.grad.clone()
    theta.grad = None
    ranks = [parts[:2], parts[2:]]  # 2 ranks, 2 micro-batches each
    n = sum(normalizer([mask[p] for p in rank], mode, max_len=8) for rank in ranks)  # all-reduce SUM
    grads: list[Tensor] = []
    for rank in ranks:
        for p in rank:  # accumulate on this rank
            aggregate((theta * loss)[p], mask[p], mode, normalizer=n, world_size=2).backward()
        assert theta.grad is not None
        grads.append(theta.grad.clone())
        theta.grad = None
    torch.testing.assert_close((grads[0] + grads[1]) / 2, expected)  # DDP's average
