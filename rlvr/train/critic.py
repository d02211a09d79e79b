"""PPO's critic in the RL loop (`advantage: gae`, SimpleRL-Zero's recipe through OpenRLHF).

Per step, after the rollouts are scored:
  values V_t of every completion token under the critic (no grad)
  → token rewards: the response's reward at its last token, minus β·KL_t at every token when `kl_in: reward`
  → GAE (γ, λ) per response → advantages whitened over the whole batch (all processes), returns = A + V
  → in each mini-batch, next to the policy's loss: the clipped value loss against the returns, the critic's own
    AdamW step (its lr follows the policy's schedule).
The critic starts as a copy of the policy's starting weights with a fresh value head, and is checkpointed next to
the policy (`critic/` in each checkpoint, its optimizer state in `trainer.pt`).
"""

from __future__ import annotations

import copy
import math
import warnings
from pathlib import Path
from typing import Any

import torch

from rlvr.algos import KL_ESTIMATORS, aggregate, gae, kl_in_reward, last_token_rewards, value_loss, whiten
from rlvr.models.value import ValueModel
from rlvr.train import distributed, precision, sharding
from rlvr.train.batches import forward_order
from rlvr.train.distributed import World
from rlvr.train.experience import Experience
from rlvr.train.optim import adamw
from rlvr.train.rl_config import RLConfig

CRITIC_DIR = "critic"  # inside a checkpoint


class Critic:
    def __init__(self, config: RLConfig, policy: Any, resume_from: Path | None, device: torch.device) -> None:
        """The critic of a fresh run (a copy of `policy`'s backbone, new head, on its device) or of the checkpoint
        being resumed (loaded onto `device`), its parameters in the policy's dtype; sharded with `sharding: fsdp`
        (pass the policy before it is sharded)."""
        if resume_from is not None:
            if not (resume_from / CRITIC_DIR).is_dir():
                raise FileNotFoundError(
                    f"{resume_from}: no {CRITIC_DIR}/ (was this run trained without a critic?)"
                )
            dtype = next(policy.parameters()).dtype
            self.model = ValueModel.from_pretrained(resume_from / CRITIC_DIR, device=device, dtype=dtype)
            if config.gradient_checkpointing:
                from rlvr.models.checkpoint import enable_gradient_checkpointing

                enable_gradient_checkpointing(self.model.backbone)
        else:
            self.model = ValueModel.from_causal_lm(copy.deepcopy(policy), seed=config.seed)
        self.model.train()
        if config.sharding == "fsdp":
            sharding.shard(self.model, self.model.backbone.layers)
        self.config = config
        self.optimizer = self.new_optimizer()

    def new_optimizer(self) -> torch.optim.AdamW:
        c = self.config
        return adamw(
            self.model, lr=c.critic_lr, weight_decay=c.weight_decay, betas=c.betas, fused=c.fused_adamw
        )

    def values(self, rows: dict[str, torch.Tensor]) -> torch.Tensor:
        """(b, T) V of the state each token was chosen in (see `ValueModel.forward`)."""
        with precision.autocast(self.config.dtype, rows["input_ids"].device):
            return self.model(rows["input_ids"], rows["attention_mask"])

    @torch.no_grad()
    def prepare(self, experience: Experience, world: World) -> dict[str, float]:
        """Store every row's values, GAE advantages (whitened over all processes) and returns; their metrics.
        With `kl_in: reward` the rows must hold `old_logp` and `ref_logp` (the per-token KL penalty)."""
        config = self.config
        order = forward_order(experience, config, sharding.is_sharded(self.model))
        experience.fill("values", self.values, order, world.device)
        lengths = torch.tensor(
            [len(s) - p for s, p in zip(experience.sequences, experience.prompt_lens, strict=True)]
        )
        mask = torch.arange(int(lengths.max()))[None, :] < lengths[:, None]  # (R, C) completion tokens
        values = _padded(experience.per_token["values"], mask)  # (R, C)
        if config.kl_coef > 0 and config.kl_in == "reward":
            logp = _padded(experience.per_token["old_logp"], mask)
            ref = _padded(experience.per_token["ref_logp"], mask)
            kl = KL_ESTIMATORS[config.kl_estimator](logp, ref)  # (R, C)
            rewards = kl_in_reward(experience.scores, kl, mask, config.kl_coef)
        else:
            rewards = last_token_rewards(experience.scores, mask)
        advantages, returns = gae(
            rewards, values, mask, gamma=config.gamma, lam=config.lam, whiten_advantages=False
        )
        trained = mask & torch.tensor(experience.trained)[:, None]  # overlong-filtered rows do not train
        advantages[trained] = _whiten_all(advantages[trained], world)
        for name, table in (("advantages", advantages), ("returns", returns)):
            experience.store(name, range(len(experience)), table, mask)
        valid = float(mask.sum())
        v, r = values[mask], returns[mask]
        sums = distributed.all_sum(
            [valid, float(v.sum()), float(r.sum()), float(((r - v) ** 2).sum()), float((r**2).sum())],
            world.device,
        )
        n = max(sums[0], 1.0)
        mean_r = sums[2] / n
        var_r = sums[4] / n - mean_r**2
        return {
            "critic/values": sums[1] / n,
            "critic/returns": mean_r,
            # 1 - E[(R - V)²] / Var(R): 1 is a perfect critic, 0 no better than the mean return
            "critic/explained_variance": 1.0 - (sums[3] / n) / var_r if var_r > 1e-12 else 0.0,
        }

    def micro_loss(self, rows: dict[str, torch.Tensor], norm: float) -> tuple[torch.Tensor, float]:
        """One micro-batch's share of the mini-batch value loss, and its count of clipped tokens."""
        config = self.config
        per_token, clipped = value_loss(
            self.values(rows), rows["values"], rows["returns"], rows["loss_mask"], clip=config.value_clip
        )
        return aggregate(per_token, rows["loss_mask"], config.loss_agg, normalizer=norm), float(clipped)

    def step(self) -> tuple[float, bool]:
        """Sum gradients over processes, clip, AdamW step; (grad norm, whether the step was taken)."""
        params = list(self.model.parameters())
        if not sharding.is_sharded(self.model):  # FSDP reduced them in backward
            distributed.all_reduce_grads(params)
        norm = sharding.total_norm(
            torch.nn.utils.clip_grad_norm_(params, self.config.max_grad_norm or math.inf)
        )
        taken = math.isfinite(norm)
        if taken:
            self.optimizer.step()
        else:
            warnings.warn("non-finite critic gradient: critic update skipped", stacklevel=1)
        self.optimizer.zero_grad(set_to_none=True)
        return norm, taken


def _padded(per_row: list[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """(R, C) float32 from one (C_i,) tensor per row, 0 past each row's end."""
    out = torch.zeros(mask.shape, dtype=torch.float32)
    out[mask] = torch.cat(per_row).float()
    return out


def _whiten_all(values: torch.Tensor, world: World) -> torch.Tensor:
    """`whiten` over the values of every process (this process's part returned); no values anywhere (every
    response empty): unchanged."""
    parts = [values] if world.size == 1 else distributed.all_gather_object(values.cpu())
    if not sum(len(p) for p in parts):
        return values
    first = sum(len(p) for p in parts[: world.rank])
    return whiten(torch.cat(parts))[first : first + len(values)].to(values.device)
