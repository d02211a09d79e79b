"""The RL stage's configuration: one `RLConfig` per run, its `stages` run one after another.

Defaults are the GRPO of DeepSeek-R1 as DAPO and Dr. GRPO measured it (token-mean loss, no KL, no entropy bonus,
clip 0.2); the published recipes in `rlvr/recipes/rl/` set the rest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from rlvr.algos import AggMode
from rlvr.data.templates import Template, resolve
from rlvr.models.build import TinyModel
from rlvr.rewards.score import reward_function
from rlvr.train import precision
from rlvr.train.experience import Overlong
from rlvr.train.optim import Schedule


@dataclass
class Stage:
    steps: int  # optimizer-step batches in this stage (the most, with a plateau rule)
    max_new_tokens: int  # response length limit
    n: int = 8  # responses per prompt
    plateau_patience: int = 0  # end the stage when train accuracy (EMA) has not improved for this many steps
    reset_reference: bool = False  # the reference model becomes the policy at the stage's start (DeepScaleR)
    reset_optimizer: bool = False  # fresh AdamW state at the stage's start


@dataclass
class RLConfig:
    model: str = "runs/sft-tiny-arith/final"  # a checkpoint dir, .gguf, registered name, hub id, or "tiny"
    tiny: TinyModel = field(default_factory=TinyModel)
    data: str = "arith"  # training problems: registered dataset or problem file
    eval_data: str | None = "arith_test"
    template: str | Template = "plain"  # a name, or one inline {system, user, prefix} (data.templates)
    reward: str = (
        "accuracy"  # a name in rlvr.rewards.REWARDS, or package.module:function (rlvr.rewards.score)
    )
    # numeric answers must be written as numbers, `9 + 73` earns nothing (None: each set's own rule)
    final_form: bool | None = None
    out_dir: str = "runs/rl"
    engine: Literal["fast", "hf", "vllm"] = "fast"
    # the in-process engine samples from a copy in this dtype, synced before each step (auto: the policy's own);
    # bfloat16 decodes 2-2.5x faster than fp32 on CPUs with native bf16 (rlvr.rollout.cast)
    # (bf16-if-native: bfloat16 where the hardware has it, rlvr.train.precision)
    rollout_dtype: Literal["auto", "float32", "bfloat16", "bf16-if-native"] = "auto"
    stages: list[Stage] = field(default_factory=lambda: [Stage(steps=100, max_new_tokens=64)])
    prompts_per_step: int = 32  # prompts per step, all processes together (groups after dynamic sampling)
    temperature: float = 1.0  # of the rollouts; log-probs in the loss use the same (logits / T, as verl)
    top_p: float = 1.0
    top_k: int = 0
    mini_batches: int = 1  # optimizer steps per rollout batch (DeepScaleR: 2 of 64 prompts)
    ppo_epochs: int = 1  # μ: passes over the batch
    micro_batch_size: int = 16  # responses per forward/backward on one process
    skip_idle_rows: bool = True  # rows whose loss is exactly 0 (advantage 0) skip the forward/backward
    # each micro-batch runs a prompt once, packed with its responses (models.logprobs.shared_prompt_logprobs), and
    # keeps a group's rows together; false: every row padded with its own copy, rows sorted by length
    share_prompts: bool = True
    # π_old of an off-policy update (μ > 1 or mini_batches > 1): the engine's sampling log-probs (no forward), or a
    # recompute by the trainer; auto: the engine's when it samples in-process from the trained weights at the
    # trainer's precision (fp32), else recompute. Every step logs the gap between the two (train/logp_gap_*).
    old_logp: Literal["auto", "engine", "recompute"] = "auto"
    advantage: Literal["grpo", "dr_grpo", "rloo", "reinforce_pp_baseline", "gae"] = (
        "grpo"  # gae: PPO + critic
    )
    loss_agg: AggMode = (
        "token-mean"  # DAPO's; "seq-mean-token-mean" is the original GRPO, Dr. GRPO's is the third
    )
    clip_low: float = 0.2  # ε_low
    clip_high: float = 0.2  # ε_high (DAPO clip-higher: 0.28)
    dual_clip: float | None = 3.0  # c for A < 0 (None: off)
    kl_coef: float = 0.0  # β: KL to the reference model (0: no reference model at all)
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    kl_in: Literal["loss", "reward"] = (
        "loss"  # reward: β·KL off the reward (per token with a critic, else summed)
    )
    entropy_coef: float = 0.0  # entropy bonus (off, as DAPO and Light-R1)
    # PPO's critic (advantage: gae; OpenRLHF's defaults as SimpleRL-Zero ran them)
    critic_lr: float = 9e-6  # the critic's own AdamW, same schedule, betas and weight decay as the policy's
    gamma: float = 1.0  # GAE discount per generated token
    lam: float = 0.95  # GAE λ
    value_clip: float | None = 0.2  # the value may move this far from its rollout-time value per update
    critic_warmup: int = 0  # first steps train only the critic (the policy waits for a useful baseline)
    dynamic_sampling: bool = False  # DAPO: drop all-equal groups and sample more prompts
    max_sample_rounds: int = 4  # bound on the extra sampling rounds of dynamic sampling
    overlong: Overlong = "none"  # truncated responses: none, filter (no loss), zero (reward 0), soft (DAPO)
    overlong_buffer: int = 0  # DAPO's L_cache for "soft"
    skip_after: int = 0  # difficulty: skip prompts always solved in their last k visits (0: never)
    skip_unsolved: bool = False  # also skip prompts never solved in their last k visits
    lr: float = 1e-6
    schedule: Schedule = "constant"
    warmup_steps: int = 0
    min_lr_ratio: float = 0.0
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    fused_adamw: bool = (
        True  # torch's fused kernel (rlvr.train.optim); FSDP's sharded parameters take foreach
    )
    max_grad_norm: float = 1.0
    max_bad_steps: int = 3  # consecutive non-finite steps before the run stops (each is skipped)
    eval_every: int = 0  # steps between held-out evaluations (0: only before and after)
    eval_problems: int = 200
    eval_n: int = 1
    eval_temperature: float = 0.0
    eval_max_new_tokens: int = 0  # 0: the last stage's max_new_tokens
    save_every: int = 0  # steps between checkpoints (0: at the end only)
    keep_last: int = 2
    # AdamW moments in step checkpoints: bfloat16 halves them (rlvr.train.checkpoint); float32: bit-exact resume
    checkpoint_optimizer: Literal["bfloat16", "float32"] = "bfloat16"
    sample_every: int = 10  # steps between sample completions written to samples.jsonl (0: never)
    # processes scoring rewards, each call killed past reward_timeout_s, each worker's memory bounded (0: in the
    # trainer's thread: no kill, no memory bound; a reward that raises still scores 0). rlvr.rewards.score
    reward_workers: int = 0
    reward_timeout_s: float = 10.0
    reward_memory_mb: int | None = 4096
    seed: int = 0
    device: str = "auto"
    # compute: bf16 autocast or fp32; auto: bf16 on a GPU with it; bf16-if-native: also on a CPU with it
    dtype: precision.ComputeDtype = "auto"
    param_dtype: precision.ParamDtype = "float32"  # weights, AdamW state; bfloat16 drops small updates
    gradient_checkpointing: bool = False
    sharding: Literal["none", "fsdp"] = "none"  # fsdp: FSDP2 over the processes (policy, critic, reference)
    tensorboard: bool = False

    def __post_init__(self) -> None:
        resolve(self.template)  # an unknown name is an error now, not after the model has loaded


def check(config: RLConfig, processes: int) -> None:
    """The combinations of settings a run refuses, each in one line, before anything is loaded or written."""
    if config.prompts_per_step % processes or config.prompts_per_step < processes:
        raise ValueError(
            f"prompts_per_step={config.prompts_per_step} must be a multiple of {processes} processes"
        )
    if not config.stages:
        raise ValueError("a recipe needs at least one stage")
    reward_function(config.reward)  # a one-line error for an unknown or unimportable reward
    if config.reward_workers < 0 or config.reward_timeout_s <= 0 or (config.reward_memory_mb or 1) < 1:
        raise ValueError("need reward_workers >= 0, reward_timeout_s > 0 and reward_memory_mb >= 1 (or null)")
    if config.sharding == "fsdp" and config.engine == "hf":
        raise ValueError("sharding=fsdp needs engine=fast or vllm (hf's generate cannot run a sharded model)")
    if config.old_logp == "engine" and config.engine == "vllm":
        raise ValueError("old_logp=engine needs engine=fast or hf: vLLM's log-probs are at temperature 1")
    if config.rollout_dtype != "auto" and (config.sharding == "fsdp" or config.engine == "vllm"):
        raise ValueError(
            "rollout_dtype is for the in-process engines (fast, hf) of an unsharded policy; "
            "vLLM loads the checkpoint in its own dtype"
        )
