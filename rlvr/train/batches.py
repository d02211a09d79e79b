"""How an RL update splits the step's rows (this process's `Experience`): mini-batches, each one optimizer step,
of micro-batches, each one forward and backward; rows whose loss is exactly 0 ("idle") run in none of them.

Every forward over the step's rows before the update (old log-probs, reference log-probs, the critic's values)
runs over the same micro-batches (`forward_order`): the same rows padded to the same length give bitwise the same
numbers, so the PPO ratio is exactly 1 and the value clip's distance exactly 0 until the first optimizer step. Any
other grouping would not: a row's log-probs move with its batch's padded length, by ~5e-7 in fp32 and ~5e-4 under
bf16 autocast (a one-ulp change in a bf16 activation is 2^-8 relative).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rlvr.train.experience import Experience
from rlvr.train.rl_config import RLConfig


@dataclass(frozen=True)
class MiniBatch:
    rows: list[int]  # every row of the mini-batch: its normaliser counts them all
    micro: list[list[int]]  # the micro-batches that run a forward and backward (idle rows left out)


def layout(experience: Experience, config: RLConfig, sharded: bool) -> list[MiniBatch]:
    """The update's `config.mini_batches` mini-batches of consecutive rows, and their micro-batches of the rows that
    run (`ordered`): a group's rows together, so that they share one copy of their prompt, or shortest first
    without `share_prompts`, so that each micro-batch pads its rows to a length near their own (responses of 10
    to 128 tokens in one step padded in arrival order waste about a third of the update's tokens). The order
    within a mini-batch changes no gradient: its loss is one sum over all its rows, normalised once."""
    idle = zero_loss_rows(experience, config, sharded)
    per_mini = math.ceil(len(experience) / config.mini_batches)
    out = []
    for m in range(config.mini_batches):
        rows = list(range(m * per_mini, min((m + 1) * per_mini, len(experience))))
        run = ordered([i for i in rows if i not in idle], experience, config)
        out.append(MiniBatch(rows, chunks(run, config.micro_batch_size)))
    return out


def forward_order(experience: Experience, config: RLConfig, sharded: bool) -> list[list[int]]:
    """Every row once, in batches: the update's micro-batches (`layout`), then the idle rows `micro_batch_size`
    at a time (`ordered`)."""
    runs = [mb for mini in layout(experience, config, sharded) for mb in mini.micro]
    ran = {i for mb in runs for i in mb}
    idle = ordered([i for i in range(len(experience)) if i not in ran], experience, config)
    return runs + chunks(idle, config.micro_batch_size)


def ordered(index: list[int], experience: Experience, config: RLConfig) -> list[int]:
    """Rows in the order micro-batches take them: as they come (a group's responses together, one copy of their
    prompt, `share_prompts`), or shortest first (padded rows)."""
    if config.share_prompts:
        return index
    return sorted(index, key=lambda i: len(experience.sequences[i]))


def zero_loss_rows(experience: Experience, config: RLConfig, sharded: bool) -> set[int]:
    """Rows whose loss and gradient are exactly 0, so the update can leave them out (their tokens still count in
    the normaliser): advantage 0 (every response of the group scored the same, GRPO / Dr. GRPO / RLOO without
    dynamic sampling) with no KL term in the loss and no entropy bonus. None with a critic (it trains on every
    row), under sharding (every process must run the same forwards), or with `skip_idle_rows` off. The entropy,
    clip and ppo_kl metrics are then over the rows that ran."""
    kl_in_loss = config.kl_coef > 0 and config.kl_in == "loss"
    critic = config.advantage == "gae"
    if critic or sharded or not config.skip_idle_rows or kl_in_loss or config.entropy_coef:
        return set()
    return {i for i, a in enumerate(experience.advantages.tolist()) if a == 0.0}


def chunks(index: list[int], size: int) -> list[list[int]]:
    return [index[i : i + size] for i in range(0, len(index), size)]
