"""From a step's kept groups to the update's rows (`Experience`) and what the update reads besides them: outcome
advantages over the whole step's batch, β·KL folded into the rewards (kl_in: reward), π_old — the engine's
sampling log-probs, or a recompute of the rows the update runs — reference log-probs when β > 0, and the critic's
values and GAE (PPO)."""

from __future__ import annotations

from typing import Any

import torch

from rlvr.algos import ADVANTAGES, KL_ESTIMATORS
from rlvr.models.logprobs import LogprobModel
from rlvr.train import distributed, precision
from rlvr.train.critic import Critic
from rlvr.train.distributed import World
from rlvr.train.experience import Experience, Group, build_experience
from rlvr.train.rl_config import RLConfig
from rlvr.train.update import store_logp


def engine_old_logp(config: RLConfig, device: torch.device) -> bool:
    """Whether π_old is the engine's sampling log-probs (`RLConfig.old_logp`): under auto, when the engine samples
    in-process from the very weights being trained at the trainer's precision (fp32)."""
    if config.old_logp != "auto":
        return config.old_logp == "engine"
    own_weights = config.rollout_dtype in ("auto", config.param_dtype)  # no copy in another dtype
    in_process = config.engine != "vllm" and own_weights and config.sharding != "fsdp"
    return in_process and precision.compute_dtype(config.dtype, device) == torch.float32


def prepare(
    groups: list[Group],
    config: RLConfig,
    world: World,
    policy: LogprobModel,
    reference: LogprobModel | None,
    critic: Critic | None,
    engine_logp: bool,
    metrics: dict[str, Any],
) -> Experience:
    """The kept groups as the update's rows, with π_old (the engine's when `engine_logp`, else recomputed for the
    rows that run, and only when the update is off-policy or the critic's KL needs it), reference log-probs when
    β > 0, the critic's values (its metrics into `metrics`)."""
    # KL in the reward: per token into the critic's GAE, or summed into each response's reward without one
    token_kl = reference is not None and config.kl_in == "reward" and critic is not None
    ref_logp = None
    if reference is not None and config.kl_in == "reward" and critic is None:
        ref_logp = kl_into_rewards(groups, policy, reference, config, world.device)
    experience = build_experience(
        groups,
        lambda s, i, c: batch_advantages(config, world, critic is not None, s, i, c),
        config.overlong,
        sampling_logp=config.engine != "vllm",
    )
    off_policy = config.ppo_epochs > 1 or config.mini_batches > 1
    if off_policy and engine_logp:  # π_old as sampled: no forward
        experience.per_token["old_logp"] = experience.per_token["sampling_logp"]
    elif off_policy or token_kl:
        store_logp(policy, experience, "old_logp", config, world.device, every_row=False)
    if ref_logp is not None:  # already computed: the update measures train/kl_ref with it (not in the loss)
        experience.per_token["ref_logp"] = ref_logp
    elif reference is not None and (config.kl_in == "loss" or token_kl):
        store_logp(reference, experience, "ref_logp", config, world.device)
    if critic is not None:
        metrics.update(critic.prepare(experience, world))
    return experience


def batch_advantages(
    config: RLConfig,
    world: World,
    critic: bool,
    scores: torch.Tensor,
    index: torch.Tensor,
    counts: torch.Tensor,
) -> torch.Tensor:
    """Advantages over the step's whole batch: groups are whole on one process, but batch-level estimators
    (REINFORCE++ whitening) need every process's rows, so they see the gathered batch."""
    if critic:  # PPO: token-level advantages come from the critic (`Critic.prepare`)
        return torch.zeros_like(scores)
    fn = ADVANTAGES[config.advantage]
    if world.size == 1 or config.advantage != "reinforce_pp_baseline":
        return fn(scores, index, token_counts=counts)
    parts = distributed.all_gather_object((scores, index, counts))
    first = sum(len(p[0]) for p in parts[: world.rank])  # this process's rows in the gathered batch
    gathered = fn(
        torch.cat([p[0] for p in parts]),
        torch.cat([p[1] + 1_000_000 * rank for rank, p in enumerate(parts)]),  # group ids unique per process
        token_counts=torch.cat([p[2] for p in parts]),
    )
    return gathered[first : first + len(scores)]


def kl_into_rewards(
    groups: list[Group], policy: LogprobModel, reference: LogprobModel, config: RLConfig, device: torch.device
) -> list[torch.Tensor]:
    """kl_in=reward without a critic: subtract β·Σ_t KL(π‖π_ref) of each response from its reward (an outcome
    advantage sees one number per response, so PPO's per-token penalty reduces to its sum; `Critic.prepare`
    keeps it per token). Returns the reference log-probs, one (C_i,) per row in `build_experience`'s order."""
    experience = build_experience(groups, lambda s, i, c: torch.zeros_like(s), "none")
    store_logp(policy, experience, "old_logp", config, device)
    store_logp(reference, experience, "ref_logp", config, device)
    estimator = KL_ESTIMATORS[config.kl_estimator]
    row = 0
    for group in groups:
        for j in range(len(group.rewards)):
            kl = estimator(experience.per_token["old_logp"][row], experience.per_token["ref_logp"][row]).sum()
            group.rewards[j] -= config.kl_coef * float(kl)
            row += 1
    return experience.per_token["ref_logp"]
