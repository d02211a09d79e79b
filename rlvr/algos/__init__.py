"""Algorithms of the GRPO family as pure tensor functions: advantages, the clipped policy and value losses, KL, aggregation.

Nothing here knows a model, a config or a process group: the trainer computes log-probs, calls these, and
all-reduces the few scalars they name (see `rlvr.algos.losses` for the aggregation contract).
"""

from rlvr.algos.advantages import ADVANTAGES, OutcomeAdvantage, gae, last_token_rewards, whiten
from rlvr.algos.kl import KL_ESTIMATORS, kl_in_reward
from rlvr.algos.losses import (
    AGG_MODES,
    AggMode,
    PolicyLossStats,
    aggregate,
    normalizer,
    policy_loss,
    value_loss,
)

__all__ = [
    "ADVANTAGES",
    "AGG_MODES",
    "KL_ESTIMATORS",
    "AggMode",
    "OutcomeAdvantage",
    "PolicyLossStats",
    "aggregate",
    "gae",
    "kl_in_reward",
    "last_token_rewards",
    "normalizer",
    "policy_loss",
    "value_loss",
    "whiten",
]
