"""The training parts of `bench/gpu.py`: packed-sequence training throughput and MFU, and one RL step.

Both drive rlvr's own pieces over a model `bench/gpu.py` built: SFT's `micro_batch_loss` over a packed row
(`rlvr.train.examples.collate` → `rlvr.models.packing.pack`), rlvr's AdamW; and the RL `Trainer`'s own step.
Like `bench/gpu.py`, NOT YET RUN ON A GPU: only the CPU smoke sizes have run.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from rl_step import IgnoreEos  # bench/rl_step.py: the trainer's engine with ignore_eos (equal work per row)

from rlvr.models.checkpoint import enable_gradient_checkpointing, quiet_loading
from rlvr.models.logprobs import LogprobModel
from rlvr.train import distributed
from rlvr.train.examples import Example
from rlvr.train.optim import adamw
from rlvr.train.rl import RLConfig, Stage, Trainer
from rlvr.train.sft import SFTConfig, micro_batch_loss


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def peak_memory(device: str) -> float | None:
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


def train(
    device: str, built: tuple[Any, Any], sizes: Any, args: argparse.Namespace, *, checkpointing: bool
) -> dict[str, Any]:
    """Optimizer steps over one packed row of `sizes.train_sequences` random sequences each: tokens/s and MFU.

    `built`: the model in fp32 (the master weights) and its tokenizer; bf16 autocast computes (SFT's
    `micro_batch_loss` under `dtype: bfloat16`), AdamW keeps fp32 moments."""
    model, tokenizer = built
    model.train()
    if checkpointing:
        enable_gradient_checkpointing(model)
    policy = LogprobModel(model)
    optimizer = adamw(model, lr=1e-5, weight_decay=0.0, betas=(0.9, 0.95))
    config = SFTConfig(pack=True, dtype="bfloat16")
    generator = torch.Generator().manual_seed(0)
    length, count = sizes.train_sequence_tokens, sizes.train_sequences
    examples = [  # ids from 2 up: no pad or eos; the first token of each is its prompt (no loss)
        Example(torch.randint(2, model.config.vocab_size, (length,), generator=generator).tolist(), 1)
        for _ in range(count)
    ]
    tokens = length * count  # per optimizer step, one packed row
    targets = (length - 1) * count  # tokens with a loss (the first of each sequence has no prediction)

    def step() -> float:
        loss, _ = micro_batch_loss(
            policy, examples, targets, config, torch.device(device), tokenizer.pad_token_id
        )
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return float(loss.detach())

    step()  # warm-up: kernels, the allocator, AdamW's state
    sync(device)
    start = time.perf_counter()
    losses = [step() for _ in range(sizes.train_steps)]
    sync(device)
    seconds = time.perf_counter() - start
    parameters = sum(p.numel() for p in model.parameters())  # the tied embedding once
    tokens_per_s = tokens * sizes.train_steps / seconds
    return {
        "gradient_checkpointing": checkpointing,
        "tokens_per_step": tokens,
        "sequences_per_row": count,
        "steps": sizes.train_steps,
        "seconds_per_step": seconds / sizes.train_steps,
        "tokens_per_s": tokens_per_s,
        "parameters": parameters,
        "mfu": 6 * parameters * tokens_per_s / (args.peak_tflops * 1e12),
        "loss": losses[-1],
        "peak_memory_gib": peak_memory(device),
    }


def rl_step(device: str, built: tuple[Any, Any], sizes: Any) -> dict[str, Any]:
    """One step of rlvr's RL `Trainer` over the model in `built`, saved to disk and loaded by the Trainer as a
    checkpoint; returns the step's own phase split and throughput figures."""
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "model"
        model, tokenizer = built
        with quiet_loading():
            model.save_pretrained(checkpoint)
            tokenizer.save_pretrained(checkpoint)
        del model, built
        config = rl_config(str(checkpoint), str(Path(tmp) / "run"), device, sizes)
        trainer = Trainer(config, distributed.init(device), resume=False, progress=False)
        trainer.engine = IgnoreEos(trainer.engine)
        if device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(device)
        start = time.perf_counter()
        metrics = trainer._step(config.stages[0])
        sync(device)
        seconds = time.perf_counter() - start
    keep = ("time/generate", "time/reward", "time/logprob", "time/update", "time/step")
    out: dict[str, Any] = {key.removeprefix("time/") + "_s": metrics[key] for key in keep}
    out.update(
        sequences=sizes.rl_prompts * sizes.rl_n,
        new_tokens=sizes.rl_new_tokens,
        wall_s=seconds,
        generate_tokens_per_s=metrics["perf/generate_tokens_per_s"],
        step_tokens_per_s=metrics["perf/tokens_per_s"],
        loss=metrics["train/loss"],
        grad_norm=metrics["train/grad_norm"],
        peak_memory_gib=peak_memory(device),
    )
    return out


def rl_config(model: str, out_dir: str, device: str, sizes: Any) -> RLConfig:
    """GRPO as the recipes run it on a GPU, with every row in the update (a random model scores 0 everywhere, so
    idle-row skipping would skip the whole update) and 2 mini-batches (so old log-probs are computed)."""
    return RLConfig(
        model=model,
        data="arith",
        eval_data=None,
        template="plain",
        reward="accuracy",
        out_dir=out_dir,
        engine="fast",
        rollout_dtype="bfloat16",  # a bf16 copy samples; fp32 master weights train
        stages=[Stage(steps=1, max_new_tokens=sizes.rl_new_tokens, n=sizes.rl_n)],
        prompts_per_step=sizes.rl_prompts,
        micro_batch_size=sizes.rl_micro_batch,
        mini_batches=2,
        skip_idle_rows=False,
        sample_every=0,
        lr=1e-6,
        device=device,
        dtype="bfloat16",
        param_dtype="float32",
        gradient_checkpointing=True,
        seed=0,
    )
