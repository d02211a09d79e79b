"""The TRL side of bench/rl_step.py: TRL's `GRPOTrainer` configured to do what rlvr's `Trainer` does, timed by
phase, and the callback that interleaves one rlvr step after each TRL optimizer step.

Phases of a TRL step, to set beside rlvr's `time/generate`, `time/reward`, `time/logprob`, `time/update`:
generate is `model.generate`; reward is the reward function; logprob is the rest of TRL's
`_generate_and_score_completions` (tokenizing the prompts, decoding, advantages, and the old-log-prob forward when it
runs: not here, μ = 1); update is the rest of the step (per micro-batch forward + backward, AdamW, bookkeeping).
What this module does not know: which workload is run (bench/rl_step.py chooses it).
"""

from __future__ import annotations

import argparse
import logging
import time
import warnings
from typing import Any

from rlvr.rewards.functions import accuracy
from rlvr.train.rl import Stage, Trainer


def trl_config(args: argparse.Namespace, out_dir: str) -> Any:
    """TRL's GRPOConfig for the workload in `args`: one step = `args.prompts` prompts × n, one optimizer step."""
    from trl import GRPOConfig

    sequences = args.prompts * args.n
    if sequences % args.micro_batch_size:
        raise ValueError(
            f"--prompts x --n = {sequences} must be a multiple of --micro-batch-size {args.micro_batch_size}"
        )
    return GRPOConfig(
        output_dir=out_dir,
        per_device_train_batch_size=args.micro_batch_size,
        # the whole generation batch accumulates into one optimizer step, as rlvr's one mini-batch
        gradient_accumulation_steps=sequences // args.micro_batch_size,
        num_generations=args.n,
        max_completion_length=args.max_new_tokens,
        generation_kwargs=None if args.stop_at_eos else {"min_new_tokens": args.max_new_tokens},
        temperature=args.temperature,
        top_p=1.0,
        top_k=0,
        learning_rate=args.lr,
        lr_scheduler_type="constant",
        weight_decay=0.0,
        optim="adamw_torch",
        max_grad_norm=1.0,
        beta=0.0,
        num_iterations=1,
        epsilon=args.clip_low,
        epsilon_high=args.clip_high,
        loss_type="dapo",
        scale_rewards="group",
        shuffle_dataset=False,  # rlvr's order, set by the caller
        max_steps=args.warmup + args.steps,
        bf16=args.dtype == "bfloat16",  # accelerate's autocast on CPU: TRL's best CPU setting
        fp16=False,
        use_cpu=True,
        gradient_checkpointing=False,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        log_completions=False,
        dataloader_num_workers=0,
        seed=0,
    )


def trl_trainer(
    args: argparse.Namespace,
    model: Any,
    tokenizer: Any,
    data: tuple[list[str], list[str]],
    final_form: bool,
    out_dir: str,
) -> tuple[Any, dict[str, list[float]]]:
    """TRL's GRPOTrainer on `data` (prompts, answers) in order (one step = the next `args.prompts`), and its
    per-step figures: tokens, correct (fraction), generate_s, reward_s, prepare_s (the whole of generate-and-score)."""
    from datasets import Dataset
    from trl import GRPOTrainer

    figures: dict[str, list[float]] = {
        "tokens": [], "correct": [], "reward_s": [], "generate_s": [], "prepare_s": []
    }  # fmt: skip

    def accuracy_reward(
        completions: list[str], answer: list[str], completion_ids: list[list[int]], **_: Any
    ) -> list[float | None]:  # TRL's reward-function type: None is "no reward"
        start = time.perf_counter()
        rewards: list[float | None] = [
            accuracy(text, gold, final_form=final_form)
            for text, gold in zip(completions, answer, strict=True)
        ]
        figures["tokens"].append(sum(len(ids) for ids in completion_ids))
        figures["correct"].append(sum(r or 0.0 for r in rewards) / len(rewards))
        figures["reward_s"].append(time.perf_counter() - start)
        return rewards

    prompts, answers = data
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=accuracy_reward,
        args=trl_config(args, out_dir),
        train_dataset=Dataset.from_dict({"prompt": prompts, "answer": answers}),
        processing_class=tokenizer,
    )
    model.generate = timed(model.generate, figures["generate_s"])  # TRL's sampling call
    trainer._generate_and_score_completions = timed(  # type: ignore[method-assign]
        trainer._generate_and_score_completions, figures["prepare_s"]
    )
    return trainer, figures


def timed(fn: Any, seconds: list[float]) -> Any:
    """`fn`, appending the seconds of each call to `seconds`."""

    def call(*a: Any, **k: Any) -> Any:
        start = time.perf_counter()
        out = fn(*a, **k)
        seconds.append(time.perf_counter() - start)
        return out

    return call


def alternate(rlvr: Trainer, stage: Stage, runs: list[dict[str, Any]], trl_seconds: list[float]) -> Any:
    """A TRL callback: at the end of each TRL optimizer step, time it, then run and time one rlvr step."""
    from transformers import TrainerCallback

    class Alternate(TrainerCallback):
        resume = 0.0

        def on_train_begin(self, *_: Any, **__: Any) -> None:
            self.resume = time.perf_counter()

        def on_step_end(self, *_: Any, **__: Any) -> None:
            trl_seconds.append(time.perf_counter() - self.resume)
            start = time.perf_counter()
            metrics = rlvr._step(stage)
            rlvr.step += 1
            rlvr.stage_step += 1
            metrics["time/step"] = time.perf_counter() - start
            metrics["tokens"] = round(
                metrics["train/response_length"] * metrics["train/groups_sampled"] * stage.n
            )
            runs.append(metrics)
            self.resume = time.perf_counter()

    return Alternate()


def quiet() -> None:
    """TRL and transformers warn about experimental features and CPU settings on every run."""
    warnings.filterwarnings("ignore")
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    for name in ("trl", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
