"""One RL update: log-probs of stored rollouts, the clipped policy loss per micro-batch, and μ epochs of optimizer
steps over mini-batches — with each mini-batch's normaliser computed over all its micro-batches on all processes
before any backward (the aggregation contract of `rlvr.algos.losses`)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch

from rlvr.algos import KL_ESTIMATORS, PolicyLossStats, aggregate, normalizer, policy_loss
from rlvr.models.logprobs import EntropyMode, LogprobModel, TokenLogprobs
from rlvr.train import distributed, precision, sharding
from rlvr.train.batches import forward_order, layout
from rlvr.train.critic import Critic
from rlvr.train.distributed import World
from rlvr.train.experience import Experience
from rlvr.train.rl_config import RLConfig


@torch.no_grad()
def store_logp(
    model: LogprobModel,
    experience: Experience,
    name: str,
    config: RLConfig,
    device: torch.device,
    every_row: bool = True,
) -> None:
    """Log-probs of the rows' completions under `model` (no grad), kept in `experience` as `name`: over the
    update's own micro-batches (`batches.forward_order`) and under its autocast, so that they are bitwise the
    log-probs the update computes until its first optimizer step. Not `every_row`: only the rows the update runs
    (idle rows never read them)."""
    sharded = sharding.is_sharded(model)
    batches = (
        forward_order(experience, config, sharded)
        if every_row
        else [mb for mini in layout(experience, config, sharded) for mb in mini.micro]
    )
    experience.fill(
        name, lambda rows: completion_logprobs(model, rows, config, entropy="none").logp, batches, device
    )


def update(
    model: LogprobModel,
    optimizer: torch.optim.Optimizer,
    experience: Experience,
    config: RLConfig,
    world: World,
    max_len: int,
    step: int,
    critic: Critic | None = None,
) -> dict[str, Any]:
    """μ epochs over `mini_batches` mini-batches, each one optimizer step over its micro-batches (the critic's
    too, when there is one); returns metrics. During `critic_warmup` steps only the critic trains."""
    train_policy = critic is None or step >= config.critic_warmup
    scale = sharding.grad_scale(model, world.size)  # FSDP averages gradients over processes: make it the sum
    sharded = sharding.is_sharded(model)
    minis = layout(experience, config, sharded)
    sums = dict.fromkeys(("loss", "kl", "entropy", "tokens"), 0.0)
    stats: PolicyLossStats | None = None
    grad_norms: list[float] = []
    skipped = 0
    critic_sums = dict.fromkeys(("loss", "clipped", "tokens", "grad_norm", "steps"), 0.0)
    idle = len(experience) - sum(len(mb) for mini in minis for mb in mini.micro)
    gap = [0.0, 0.0, 0.0]  # engine vs trainer log-probs at θ_old: max |Δ|, Σ |Δ|, tokens
    measured = False  # whether the gap has been measured (on one mini-batch)
    for _epoch in range(config.ppo_epochs):
        for mini in minis:
            batches = [experience.rows(mb, world.device) for mb in mini.micro]
            # the normaliser of the whole mini-batch, over every micro-batch of every process, before any backward;
            # its idle rows count there, and add nothing else
            masks = [rows["loss_mask"] for rows in batches]
            if sum(map(len, mini.micro)) < len(mini.rows):
                masks = [experience.rows(mini.rows, world.device, stored=False)["loss_mask"]]
            norm = distributed.all_sum(
                [normalizer(masks, config.loss_agg, max_len) if masks else 0.0], world.device
            )[0]
            if norm <= 0:
                continue
            mini_loss = 0.0
            for rows in batches:
                if critic is not None:
                    value_loss, clipped = critic.micro_loss(rows, norm)
                    (value_loss * scale).backward()
                    critic_sums["loss"] += float(value_loss.detach())
                    critic_sums["clipped"] += clipped
                    critic_sums["tokens"] += float(rows["loss_mask"].sum())
                if not train_policy:
                    continue
                loss, mb_stats, extra = micro_loss(model, rows, norm, config)
                if not measured and "sampling_logp" in rows:
                    # the first mini-batch that runs: θ_old (or, after all-idle mini-batches, θ_old moved by their
                    # steps' momentum and weight decay alone)
                    gap = logp_gap(extra["logp"], rows["sampling_logp"], rows["completion"], gap)
                (loss * scale).backward()
                mini_loss += float(loss.detach())
                stats = mb_stats if stats is None else stats + mb_stats
                for key in ("kl", "entropy", "tokens"):
                    sums[key] += extra[key]
            if critic is not None:
                critic_norm, taken = critic.step()
                critic_sums["grad_norm"] += critic_norm
                critic_sums["steps"] += 1
                skipped += not taken
            if not train_policy:
                continue
            for p in model.parameters():  # every row idle: the zero gradient running them would have given
                if p.requires_grad and p.grad is None:
                    p.grad = torch.zeros_like(p)
            if not sharded:  # FSDP reduced them in backward
                distributed.all_reduce_grads(model.parameters())
            grad_norm = sharding.total_norm(
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm or math.inf)
            )
            if math.isfinite(grad_norm) and math.isfinite(mini_loss):
                optimizer.step()
            else:
                skipped += 1
                warnings.warn(f"step {step}: non-finite loss or gradient, update skipped", stacklevel=1)
            optimizer.zero_grad(set_to_none=True)
            measured = measured or bool(batches)
            sums["loss"] += mini_loss
            grad_norms.append(grad_norm)
    clip = (
        [0.0] * 5
        if stats is None
        else [
            float(v) for v in (stats.tokens, stats.clip_low, stats.clip_high, stats.dual_clip, stats.ppo_kl)
        ]
    )
    loss_sum, kl, entropy, tokens, clip_tokens, low, high, dual, ppo_kl, idle_rows, all_rows = (
        distributed.all_sum(
            [sums["loss"], sums["kl"], sums["entropy"], sums["tokens"], *clip, idle, len(experience)],
            world.device,
        )
    )
    tokens, clip_tokens = max(tokens, 1.0), max(clip_tokens, 1.0)
    metrics = {
        "train/loss": loss_sum / max(1, len(grad_norms)),
        "train/kl_ref": kl / tokens,
        "train/entropy": entropy / tokens,
        "train/clip_low": low / clip_tokens,
        "train/clip_high": high / clip_tokens,
        "train/dual_clip": dual / clip_tokens,
        "train/ppo_kl": ppo_kl / clip_tokens,
        "train/grad_norm": sum(grad_norms) / max(1, len(grad_norms)),
        "train/lr": optimizer.param_groups[0]["lr"],
        "train/skipped": float(skipped),
        "train/rows_idle": idle_rows / max(all_rows, 1.0),  # loss identically 0: no forward, no backward
    }
    metrics.update(gap_metrics(gap, world))
    if critic is not None:
        metrics.update(critic_metrics(critic, critic_sums, world))
        metrics["train/policy_trained"] = float(train_policy)
    return metrics


def gap_metrics(gap: list[float], world: World) -> dict[str, float]:
    """The engine's sampling log-probs against the trainer's over the first running mini-batch's tokens (`gap`:
    max |Δ|, Σ |Δ|, tokens on this process); none when no row carried the engine's."""
    total, tokens = distributed.all_sum(gap[1:], world.device)
    if not tokens:
        return {}
    return {
        "train/logp_gap_max": distributed.all_max(gap[0], world.device),
        "train/logp_gap_mean": total / tokens,
    }


def critic_metrics(critic: Critic, sums: dict[str, float], world: World) -> dict[str, float]:
    """The critic's value loss, clip fraction, gradient norm and lr over the update's optimizer steps."""
    value_sum, clipped_sum, valid = distributed.all_sum(
        [sums["loss"], sums["clipped"], sums["tokens"]], world.device
    )
    steps = max(sums["steps"], 1.0)
    return {
        "critic/value_loss": value_sum / steps,
        "critic/clip_frac": clipped_sum / max(valid, 1.0),
        "critic/grad_norm": sums["grad_norm"] / steps,
        "critic/lr": critic.optimizer.param_groups[0]["lr"],
    }


def completion_logprobs(
    model: LogprobModel, rows: dict[str, torch.Tensor], config: RLConfig, entropy: EntropyMode
) -> TokenLogprobs:
    """Log-probs of the rows' completion tokens at the rollouts' temperature (the distribution they were sampled
    from), under the config's compute precision (`rlvr.train.precision`)."""
    # each prompt once, packed with its responses; or every row padded, its completion the target
    shape = (
        {"prompt_lengths": rows["prompt_lengths"]}
        if config.share_prompts
        else {"target_mask": rows["completion"]}
    )
    with precision.autocast(config.dtype, rows["input_ids"].device):
        return model(
            rows["input_ids"],
            rows["attention_mask"],
            temperature=config.temperature,
            entropy=entropy,
            **shape,
        )


def logp_gap(logp: torch.Tensor, sampled: torch.Tensor, mask: torch.Tensor, gap: list[float]) -> list[float]:
    """`gap` ([max |Δ|, Σ |Δ|, tokens]) updated with one micro-batch's log-probs (b, T) against the engine's,
    over the completion tokens `mask` (b, T)."""
    delta = (logp.float() - sampled).abs()[mask]
    if not len(delta):
        return gap
    return [max(gap[0], float(delta.max())), gap[1] + float(delta.sum()), gap[2] + len(delta)]


def micro_loss(
    model: LogprobModel, rows: dict[str, torch.Tensor], norm: float, config: RLConfig
) -> tuple[torch.Tensor, PolicyLossStats, dict[str, Any]]:
    """One micro-batch's share of the mini-batch loss (its sum / the global normaliser), its clip statistics, and
    its KL / entropy sums for the metrics. `rows`: `Experience.rows` of the micro-batch."""
    out = completion_logprobs(model, rows, config, entropy="grad" if config.entropy_coef else "detached")
    mask = rows["loss_mask"]  # (b, T)
    logp = out.logp  # (b, T)
    old_logp = rows.get("old_logp", logp.detach())  # on-policy: ratio 1, the plain policy gradient
    per_token, stats = policy_loss(
        logp, old_logp, rows["advantages"], mask,
        clip_low=config.clip_low, clip_high=config.clip_high, dual_clip=config.dual_clip,
    )  # fmt: skip
    kl_sum = 0.0
    if "ref_logp" in rows:  # KL to the reference: in the loss, or only measured (kl_in: reward)
        kl = KL_ESTIMATORS[config.kl_estimator](logp, rows["ref_logp"])  # (b, T)
        if config.kl_in == "loss":
            per_token = per_token + config.kl_coef * kl
        kl_sum = float((kl.detach() * mask).sum())
    assert out.entropy is not None
    if config.entropy_coef:
        per_token = per_token - config.entropy_coef * out.entropy
    loss = aggregate(per_token, mask, config.loss_agg, normalizer=norm)
    extra: dict[str, Any] = {
        "logp": logp.detach(),
        "kl": kl_sum,
        "entropy": float((out.entropy.detach() * mask).sum()),
        "tokens": float(mask.sum()),
    }
    return loss, stats, extra
