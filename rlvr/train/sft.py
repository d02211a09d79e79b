"""Supervised fine-tuning: cold start, distillation, and SFT on rejection-sampled completions.

One flat loop. Each optimizer step takes the next `batch_size` examples of a seeded epoch order (all processes
together); each process takes every world-size-th of them, in micro-batches of `micro_batch_size` (packed into one
row, or padded); the loss is the sum of target-token negative log-probs divided by the target tokens of the WHOLE
global batch, so accumulation over micro-batches and processes gives the full-batch token mean exactly (the
normaliser is known up front: every process knows every example's length). Then gradients are summed across
processes, clipped, and AdamW steps with a warmup + cosine/linear schedule.

A run folder holds `config.yaml`, `metrics.jsonl` (train loss, lr, grad norm, tokens/s, held-out loss), checkpoints
that resume exactly (`rlvr sft RECIPE --resume`), and `final/`, the fine-tuned model in Hugging Face format.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from rlvr.config import save_config
from rlvr.data.registry import final_form, load_problems
from rlvr.data.templates import Template, resolve
from rlvr.models.build import TinyModel, build_model
from rlvr.models.logprobs import LogprobModel
from rlvr.train import checkpoint, distributed, precision, sharding
from rlvr.train.distributed import World
from rlvr.train.examples import Example, collate, global_batch, load_examples
from rlvr.train.metrics import MetricsLog, read_metrics
from rlvr.train.optim import Schedule, adamw, lr_at, set_lr


@dataclass
class SFTConfig:
    model: str = "tiny"  # a checkpoint dir, .gguf, registered name, hub id, or "tiny" (built from `tiny`)
    tiny: TinyModel = field(default_factory=TinyModel)
    data: str = (
        "arith"  # registered dataset or file: problems with `solution`, {problem, response}, {messages}
    )
    eval_data: str | None = "arith_test"  # held-out examples for the held-out loss (and accuracy)
    template: str | Template = "plain"  # a name, or one inline {system, user, prefix} (data.templates)
    out_dir: str = "runs/sft"  # the run folder
    max_length: int = 1024  # tokens per example, prompt + target; longer targets are cut
    pack: bool = True  # several examples per row (no padding, no attention across them); else right-padding
    batch_size: int = 32  # examples per optimizer step, all processes together
    micro_batch_size: int = 8  # examples per forward/backward on one process
    epochs: float = 1.0  # passes over the data (ignored when max_steps is set)
    max_steps: int | None = None  # optimizer steps
    lr: float = 1e-5  # peak learning rate
    schedule: Schedule = "cosine"  # decay after warmup
    warmup_steps: int = 0
    min_lr_ratio: float = 0.1  # the decay ends at lr * min_lr_ratio
    weight_decay: float = 0.0  # on matrices only
    betas: tuple[float, float] = (0.9, 0.95)
    max_grad_norm: float = 1.0  # clip the global gradient norm (0: off)
    dtype: precision.ComputeDtype = "auto"  # compute: bf16 autocast or fp32; auto: bf16 on a GPU with it
    param_dtype: precision.ParamDtype = "float32"  # weights, AdamW state; bfloat16 drops small updates
    gradient_checkpointing: bool = False  # recompute activations in backward (memory for time)
    sharding: Literal["none", "fsdp"] = "none"  # fsdp: FSDP2 over the processes (rlvr.train.sharding)
    eval_every: int = 0  # steps between held-out losses (0: at the end only)
    eval_examples: int = 256  # held-out examples for the loss
    eval_generate: int = 0  # held-out problems answered at the end, graded by the verifier (0: none)
    eval_n: int = 1  # samples per problem for that accuracy
    eval_temperature: float = 0.0  # 0: greedy
    eval_max_new_tokens: int = 256
    save_every: int = 0  # steps between checkpoints (0: at the end only)
    keep_last: int = 2  # checkpoints kept
    checkpoint_optimizer: Literal["bfloat16", "float32"] = "bfloat16"  # moments; float32: bit-exact resume
    log_every: int = 1  # steps between metrics records
    seed: int = 0  # data order
    device: str = "auto"  # auto: this process's GPU, else CPU
    tensorboard: bool = False  # also write TensorBoard scalars (needs the tensorboard package)

    def __post_init__(self) -> None:
        resolve(self.template)  # an unknown name is an error now, not after the model has loaded


def micro_batch_loss(
    model: LogprobModel,
    examples: list[Example],
    normaliser: float,
    config: SFTConfig,
    device: torch.device,
    pad_id: int,
) -> tuple[torch.Tensor, int]:
    """Summed target-token NLL of `examples` / normaliser (a scalar to backprop), and their target tokens."""
    batch = collate(examples, config.pack, pad_id).to(device)
    with precision.autocast(config.dtype, device):
        out = model(
            batch.input_ids,
            batch.attention_mask,
            batch.position_ids,
            target_mask=batch.target_mask,
            entropy="none",
        )
    return -out.logp.sum() / normaliser, int(out.mask.sum())


def heldout_loss(
    model: LogprobModel, examples: list[Example], config: SFTConfig, world: World, pad_id: int
) -> float:
    """Token-mean NLL of the held-out examples (shared across processes)."""
    mine = examples[world.rank :: world.size]
    total, tokens = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, len(mine), config.micro_batch_size):
            loss, n = micro_batch_loss(
                model, mine[i : i + config.micro_batch_size], 1.0, config, world.device, pad_id
            )
            total, tokens = total + float(loss), tokens + n
    model.train()
    total, count = distributed.all_sum([total, tokens], world.device)
    return total / max(count, 1)


def run(config: SFTConfig, *, resume: bool = False, progress: bool = True) -> dict[str, Any]:
    """Train; returns the final figures (the last train loss, held-out loss and accuracy, time)."""
    world = distributed.init(config.device)
    try:
        figures = _run(config, world, resume=resume, progress=progress)
        distributed.barrier()  # no process closes its links while another still uses them
        return figures
    finally:
        distributed.shutdown()


def _run(config: SFTConfig, world: World, *, resume: bool, progress: bool) -> dict[str, Any]:
    config = precision.resolved(config, world.device)
    run_dir = Path(config.out_dir)
    last = checkpoint.latest(run_dir)
    if last is not None and not resume:
        raise ValueError(
            f"{run_dir} already holds checkpoints: pass --resume to continue, or choose another out_dir"
        )
    start = time.time()
    torch.manual_seed(config.seed)
    dtype = precision.param_dtype(config)
    model, tokenizer = build_model(config, last if resume else None, world.device, dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    examples, dropped = load_examples(config.data, tokenizer, config.template, config.max_length)
    held_out = (
        load_examples(config.eval_data, tokenizer, config.template, config.max_length, config.eval_examples)[
            0
        ]
        if config.eval_data
        else []
    )
    if dropped and world.main:
        warnings.warn(
            f"{config.data}: {dropped} examples dropped, their prompt fills max_length", stacklevel=1
        )
    total_steps = config.max_steps or math.ceil(config.epochs * len(examples) / config.batch_size)
    policy = LogprobModel(model)  # what the loss calls: its forward is FSDP's root
    if config.sharding == "fsdp":
        sharding.shard(policy, model.get_decoder().layers)
    if sharding.is_sharded(policy):  # every process must run the same forwards (each is a collective)
        if config.batch_size % world.size:
            raise ValueError(
                f"sharding=fsdp: batch_size={config.batch_size} must be a multiple of {world.size}"
            )
        held_out = held_out[: len(held_out) - len(held_out) % world.size]
    scale = sharding.grad_scale(policy, world.size)  # FSDP averages gradients over processes: make it the sum
    optimizer = adamw(model, lr=config.lr, weight_decay=config.weight_decay, betas=config.betas)
    step, consumed = 0, 0
    if resume and last is not None:
        state = checkpoint.load(last, optimizer, world, model=model)
        step, consumed = state["step"], state["consumed"]
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(config, run_dir / "config.yaml")
        checkpoint.clear_leftovers(run_dir)
    log = MetricsLog(
        run_dir / "metrics.jsonl",
        resume_step=step if resume else None,
        tensorboard=config.tensorboard,
        main=world.main,
    )

    def save() -> None:
        checkpoint.save(
            run_dir, step, model=model, tokenizer=tokenizer, optimizer=optimizer,
            state={"step": step, "consumed": consumed}, world=world, keep_last=config.keep_last,
            optimizer_dtype=config.checkpoint_optimizer,
        )  # fmt: skip

    from tqdm import tqdm

    bar = tqdm(
        total=total_steps, initial=step, disable=not (progress and world.main), desc="sft", unit="step"
    )
    figures: dict[str, Any] = {}
    # resumed: start from the last step's figures, for a run killed after its last checkpoint (no step left to run)
    if world.main and step and log.path.exists():
        rows = [r for r in read_metrics(log.path) if "train/loss" in r]
        figures.update({k: v for k, v in rows[-1].items() if k != "step"} if rows else {})
    while step < total_steps:
        t0 = time.time()
        lr = lr_at(
            step, lr=config.lr, total=total_steps, warmup=config.warmup_steps,
            schedule=config.schedule, min_lr_ratio=config.min_lr_ratio,
        )  # fmt: skip
        set_lr(optimizer, lr)
        indices = global_batch(len(examples), config.seed, consumed, config.batch_size)
        normaliser = sum(examples[i].target_tokens for i in indices)  # target tokens of the global batch
        mine = [examples[i] for i in indices[world.rank :: world.size]]
        loss_sum, tokens = 0.0, 0
        for i in range(0, len(mine), config.micro_batch_size):
            loss, n = micro_batch_loss(
                policy, mine[i : i + config.micro_batch_size], normaliser, config, world.device, pad_id
            )
            (loss * scale).backward()
            loss_sum, tokens = loss_sum + float(loss.detach()), tokens + n
        if not sharding.is_sharded(policy):  # FSDP reduced them in backward
            distributed.all_reduce_grads(model.parameters())
        grad_norm = sharding.total_norm(
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm or float("inf"))
        )
        if math.isfinite(grad_norm):
            optimizer.step()
        elif world.main:
            warnings.warn(f"step {step}: non-finite gradient norm, update skipped", stacklevel=1)
        optimizer.zero_grad(set_to_none=True)
        step, consumed = step + 1, consumed + len(indices)
        loss_sum, token_count = distributed.all_sum([loss_sum, tokens], world.device)
        metrics = {
            "train/loss": loss_sum,
            "train/lr": lr,
            "train/grad_norm": grad_norm,
            "train/tokens": token_count,
            "train/tokens_per_s": token_count / max(time.time() - t0, 1e-9),
            "train/epoch": consumed / len(examples),
        }
        if held_out and (step == total_steps or (config.eval_every and step % config.eval_every == 0)):
            metrics["eval/loss"] = heldout_loss(policy, held_out, config, world, pad_id)
        if step % config.log_every == 0 or step == total_steps or "eval/loss" in metrics:
            log.log(step, metrics)
        bar.set_postfix(loss=f"{loss_sum:.3f}", lr=f"{lr:.2e}")
        bar.update(1)
        figures.update(metrics)
        if step == total_steps or (config.save_every and step % config.save_every == 0):
            save()
    bar.close()

    if config.eval_generate and config.eval_data:
        from rlvr.eval.accuracy import heldout_accuracy

        with sharding.gathered(policy):  # every process gathers (a collective); the main one generates
            if world.main:
                problems = load_problems(config.eval_data, require_answer=False)[: config.eval_generate]
                result = heldout_accuracy(
                    model, tokenizer, problems, template=config.template,
                    max_new_tokens=config.eval_max_new_tokens, n=config.eval_n,
                    temperature=config.eval_temperature, seed=config.seed,
                    final_form=final_form(config.eval_data),
                )  # fmt: skip
                figures.update(result.figures())  # accuracy, truncated, and the n and temperature behind them
                log.log(step, result.figures())
    checkpoint.save_model(model, tokenizer, run_dir / "final", world)
    log.close()
    figures["steps"] = step
    figures["seconds"] = time.time() - start
    figures["run_dir"] = str(run_dir)
    return figures
