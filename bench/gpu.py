"""One GPU's figures for a Qwen2.5-1.5B-shaped Qwen2 (random weights): decode, training, one RL step, parity.

    python bench/gpu.py                   # one H200, ≤ 8 minutes: every part, a report, then one JSON line
    python bench/gpu.py --json            # only the JSON object
    python bench/gpu.py --parts decode,parity --peak-tflops 989 --peak-gbps 4800
    python bench/gpu.py --smoke           # the tiny model on CPU, in seconds (tests/test_bench_gpu.py)

NOT YET RUN ON A GPU. It was written on a CPU-only machine and only its `--smoke` path (tiny model, CPU) has
run; the CUDA path (bf16, the 1.5B shape, torch.cuda timings and peak memory) has not. Expect to fix things
the first time it meets an H200.

Parts, each with its own time cap (`CAPS`) inside the run's `--budget`; a part that fails or runs over its cap
records {"error": ...} and the others still run:
  bandwidth          achieved HBM bandwidth: a large device-to-device copy (bytes read + written / time).
  parity             greedy completions of `FastEngine` and `HFEngine` (model.generate) on fp32 weights, token for
                     token; and the log-prob gap, max |Δ| between the fast engine's sampling log-probs and a fresh
                     forward (`token_logprobs`) over the same tokens: fp32 engine vs fp32 forward, bf16 vs bf16, and
                     bf16 rollout vs the trainer's view (fp32 weights under bf16 autocast). Random weights have
                     near-tied logits, so greedy bf16 decoding is expected to part ways between kernels: the bf16
                     figure is the fraction of completions that agree, not a pass/fail.
  decode             FastEngine tokens/s at batch 64 and 256 (B/8 prompts x n = 8, eos ignored, bf16), against
                     the memory roofline: (bytes of weights + KV cache read per decode step) x steps / time
                     (`bench/rollout.py`'s `bandwidth`), as a fraction of the measured bandwidth and of --peak-gbps.
  train, train_checkpointed
                     one 8K-token row of 8 packed 1K sequences per optimizer step (rlvr's `pack` and SFT's
                     `micro_batch_loss`), bf16 autocast over fp32 master weights, AdamW; gradient checkpointing off,
                     then on. MFU = 6 N tokens / time / --peak-tflops (N: every parameter, the tied head once;
                     attention's own FLOPs, ~3% here, are left out; checkpointing's recompute is not counted).
  rl_step            one step of rlvr's RL `Trainer` (`Trainer._step`): 32 prompts x n = 8 x 1K new tokens (eos
                     ignored), rewards, old log-probs (2 mini-batches make the step off-policy), the update; its
                     own phase split. The model is saved to a temporary directory and loaded by the Trainer.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import rollout as rollout_bench  # bench/rollout.py: the 1.5B shape, its filler tokenizer, the roofline
import torch

from rlvr.models.build import cast_parameters
from rlvr.models.logprobs import token_logprobs
from rlvr.models.packing import pack
from rlvr.rollout.fast import FastEngine
from rlvr.rollout.hf import HFEngine
from rlvr.rollout.types import Rollout, SamplingParams
from rlvr.train import precision

H200_TFLOPS = 989.0  # dense bf16, no sparsity
H200_GBPS = 4800.0  # HBM3e, nominal


@dataclass(frozen=True)
class Sizes:
    """How much each part runs: the GPU's sizes, or the smoke test's."""

    model_shape: str  # "qwen2.5-1.5b" or "tiny" (bench/rollout.py's build)
    device: str
    copy_mib: int  # each of the two buffers of the bandwidth copy
    decode_batches: tuple[int, ...]  # sequences decoded together
    decode_new_tokens: int
    train_sequences: int  # packed into one row per optimizer step
    train_sequence_tokens: int
    train_steps: int  # timed, after one warm-up step
    rl_prompts: int
    rl_n: int
    rl_new_tokens: int
    rl_micro_batch: int
    parity_prompts: int
    parity_new_tokens: int


GPU = Sizes(
    model_shape="qwen2.5-1.5b", device="cuda", copy_mib=4096, decode_batches=(64, 256), decode_new_tokens=512,
    train_sequences=8, train_sequence_tokens=1024, train_steps=5,
    rl_prompts=32, rl_n=8, rl_new_tokens=1024, rl_micro_batch=16, parity_prompts=4, parity_new_tokens=32,
)  # fmt: skip
SMOKE = Sizes(
    model_shape="tiny", device="cpu", copy_mib=16, decode_batches=(8, 16), decode_new_tokens=8,
    train_sequences=4, train_sequence_tokens=64, train_steps=2,
    rl_prompts=4, rl_n=4, rl_new_tokens=8, rl_micro_batch=8, parity_prompts=2, parity_new_tokens=8,
)  # fmt: skip
CAPS = {  # seconds per part; the whole run also stops at --budget
    "bandwidth": 30,
    "parity": 60,
    "decode": 90,
    "train": 60,
    "train_checkpointed": 60,
    "rl_step": 240,
}


class PartTimeout(BaseException):
    """A part ran past its cap (a BaseException, so library code's `except Exception` does not swallow it)."""


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def build(sizes: Sizes, dtype: str) -> tuple[Any, Any]:
    """The model (eval mode, on the device, parameters in `dtype`) and a tokenizer covering its vocabulary."""
    args = argparse.Namespace(model_shape=sizes.model_shape, arch="qwen2", device=sizes.device, dtype=dtype)
    return rollout_bench.synthetic(args)


def chat_prompts(tokenizer: Any, count: int) -> list[str]:
    questions = (rollout_bench.QUESTIONS * count)[:count]
    return [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in questions
    ]


def peak_memory(device: str) -> float | None:
    """GiB allocated at most since the part began (None on CPU)."""
    return torch.cuda.max_memory_allocated() / 2**30 if device == "cuda" else None


# -- parts ---------------------------------------------------------------------------------------------------------
def bandwidth(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    """Achieved memory bandwidth: bytes read + written by a large copy, per second (10 copies after a warm-up one)."""
    size = sizes.copy_mib * 2**20
    src = torch.empty(size, dtype=torch.uint8, device=sizes.device).fill_(1)
    dst = torch.empty_like(src)
    dst.copy_(src)  # warm-up
    sync(sizes.device)
    repeats = 10
    start = time.perf_counter()
    for _ in range(repeats):
        dst.copy_(src)
    sync(sizes.device)
    seconds = time.perf_counter() - start
    gbps = 2 * size * repeats / seconds / 1e9
    return {"gb_per_s": gbps, "fraction_of_peak": gbps / args.peak_gbps, "copy_mib": sizes.copy_mib}


def decode(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    """FastEngine tokens/s at each batch, and the memory roofline's fraction (weights + KV read per step)."""
    dtype = "bfloat16" if sizes.device == "cuda" else "float32"
    model, tokenizer = build(sizes, dtype)
    engine = FastEngine(model, tokenizer)
    n = 8
    out: dict[str, Any] = {"dtype": dtype, "new_tokens": sizes.decode_new_tokens, "n": n}
    for batch in sizes.decode_batches:
        prompts = chat_prompts(tokenizer, max(1, batch // n))
        params = SamplingParams(
            n=n, temperature=1.0, max_new_tokens=sizes.decode_new_tokens, seed=0, ignore_eos=True
        )
        engine.generate(prompts, SamplingParams(n=n, max_new_tokens=16, seed=1, ignore_eos=True))  # warm-up
        if sizes.device == "cuda":
            torch.cuda.reset_peak_memory_stats()
        sync(sizes.device)
        start = time.perf_counter()
        rollouts = engine.generate(prompts, params)
        sync(sizes.device)
        seconds = time.perf_counter() - start
        tokens = sum(len(r.completion_ids) for r in rollouts)
        prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
        roof = argparse.Namespace(max_new_tokens=sizes.decode_new_tokens, n=n)
        reads = rollout_bench.bandwidth(model, prompt_tokens, roof, seconds, args.peak_gbps)
        out[f"batch_{len(rollouts)}"] = {
            "tokens_per_s": tokens / seconds,
            "seconds": seconds,
            "ms_per_step": seconds / sizes.decode_new_tokens * 1e3,
            "tokens": tokens,
            "roofline_gb_per_s": reads["gb_per_s"],
            "fraction_of_peak": reads["fraction"],
            "fraction_of_measured": reads["gb_per_s"] / args.measured_gbps if args.measured_gbps else None,
            "peak_cache_gib": engine.peak_cache_bytes / 2**30,
            "peak_memory_gib": peak_memory(sizes.device),
        }
    return out


def parity(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    """Greedy fast == hf on fp32 weights, and the engines' log-prob gaps to a fresh forward."""
    model, tokenizer = build(sizes, "float32")
    prompts = chat_prompts(tokenizer, sizes.parity_prompts)
    greedy = SamplingParams(temperature=0.0, max_new_tokens=sizes.parity_new_tokens, ignore_eos=True)
    fast = FastEngine(model, tokenizer).generate(prompts, greedy)
    hf = HFEngine(model, tokenizer).generate(prompts, greedy)
    equal = [f.completion_ids == h.completion_ids for f, h in zip(fast, hf, strict=True)]
    half = cast_parameters(copy.deepcopy(model), torch.bfloat16)
    fast16 = FastEngine(half, tokenizer).generate(prompts, greedy)
    hf16 = HFEngine(half, tokenizer).generate(prompts, greedy)
    sampled = SamplingParams(n=2, temperature=1.0, max_new_tokens=sizes.parity_new_tokens, seed=0)
    rollouts32 = FastEngine(model, tokenizer).generate(prompts, sampled)
    rollouts16 = FastEngine(half, tokenizer).generate(prompts, sampled)
    return {
        "greedy_equal": all(equal),
        "greedy_equal_prompts": sum(equal),
        "prompts": len(prompts),
        "new_tokens": sizes.parity_new_tokens,
        "float32_matmul_precision": torch.get_float32_matmul_precision(),  # "highest": no TF32
        "greedy_equal_fraction_bf16": sum(
            f.completion_ids == h.completion_ids for f, h in zip(fast16, hf16, strict=True)
        )
        / len(prompts),
        "logprob_gap_fp32": logprob_gap(model, rollouts32, None),
        "logprob_gap_bf16": logprob_gap(half, rollouts16, None),
        "logprob_gap_bf16_rollout_vs_autocast": logprob_gap(model, rollouts16, "bfloat16"),
    }


@torch.no_grad()
def logprob_gap(model: Any, rollouts: list[Rollout], autocast: str | None) -> float:
    """max |engine log-prob - fresh forward log-prob| over every completion token (the rows packed in one)."""
    device = next(model.parameters()).device
    packed = pack([r.prompt_ids + r.completion_ids for r in rollouts], [len(r.prompt_ids) for r in rollouts])
    with precision.autocast(autocast or "float32", device):
        out = token_logprobs(
            model,
            packed.input_ids.to(device),
            None,
            packed.position_ids.to(device),
            target_mask=packed.completion_mask.to(device),
            entropy="none",
        )
    fresh = out.logp[out.mask].cpu()  # (tokens,) in the rollouts' order
    engine = torch.tensor([lp for r in rollouts for lp in r.logprobs])  # (tokens,)
    return float((fresh - engine).abs().max())


# -- the run -------------------------------------------------------------------------------------------------------
def guarded(name: str, part: Callable[[], dict[str, Any]], cap: float, device: str) -> dict[str, Any]:
    """`part()`'s figures, or {"error": ...} when it raises or runs past `cap` seconds; with its wall time."""

    def expire(signum: int, frame: Any) -> None:
        raise PartTimeout(f"{name} ran past its {cap:.0f} s cap")

    if cap < 1:
        return {
            "error": f"skipped: {max(cap, 0):.1f} s left for it (its cap, or the run's --budget)",
            "part_seconds": 0.0,
        }
    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, cap)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    try:
        result = part()
    except (Exception, PartTimeout) as e:
        result = {"error": f"{type(e).__name__}: {e}"[:1000]}
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    result["part_seconds"] = time.perf_counter() - start
    gc.collect()
    if device == "cuda":
        torch.cuda.empty_cache()
    return result


def run_parts(sizes: Sizes, args: argparse.Namespace) -> dict[str, Any]:
    from gpu_train import rl_step, train  # bench/gpu_train.py

    saved_dtype = "bfloat16" if sizes.device == "cuda" else "float32"  # the checkpoint the RL Trainer loads
    parts: dict[str, Callable[[], dict[str, Any]]] = {
        "bandwidth": lambda: bandwidth(sizes, args),
        "parity": lambda: parity(sizes, args),
        "decode": lambda: decode(sizes, args),
        "train": lambda: train(sizes.device, build(sizes, "float32"), sizes, args, checkpointing=False),
        "train_checkpointed": lambda: train(
            sizes.device, build(sizes, "float32"), sizes, args, checkpointing=True
        ),
        "rl_step": lambda: rl_step(sizes.device, build(sizes, saved_dtype), sizes),
    }
    chosen = args.parts.split(",") if args.parts else list(parts)
    unknown = [p for p in chosen if p not in parts]
    if unknown:
        raise SystemExit(f"error: unknown part(s) {', '.join(unknown)}; parts: {', '.join(parts)}")
    deadline = time.monotonic() + args.budget
    results: dict[str, Any] = {}
    for name in chosen:
        if not args.json:
            print(f"[{name}] ...", flush=True)
        cap = min(CAPS[name] * args.cap_scale, deadline - time.monotonic())
        results[name] = guarded(name, parts[name], cap, sizes.device)
        if name == "bandwidth" and "gb_per_s" in results[name]:
            args.measured_gbps = results[name]["gb_per_s"]
        if not args.json:
            print(f"[{name}] {json.dumps(results[name], default=str)}", flush=True)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU, seconds (the test's mode)")
    parser.add_argument("--parts", default="", help=f"comma-separated subset of: {', '.join(CAPS)}")
    parser.add_argument("--peak-tflops", type=float, default=H200_TFLOPS, help="dense bf16 TFLOP/s for MFU")
    parser.add_argument("--peak-gbps", type=float, default=H200_GBPS, help="nominal memory bandwidth, GB/s")
    parser.add_argument(
        "--budget", type=float, default=440.0, help="seconds for all parts (startup is extra)"
    )
    parser.add_argument("--cap-scale", type=float, default=1.0, help="multiplies every part's time cap")
    parser.add_argument("--json", action="store_true", help="print only the JSON object")
    args = parser.parse_args(argv)
    args.measured_gbps = None
    sizes = SMOKE if args.smoke else GPU
    if sizes.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: no CUDA device; use --smoke for the CPU run")
    start = time.perf_counter()
    results = run_parts(sizes, args)
    summary = {
        "model_shape": sizes.model_shape,
        "device": torch.cuda.get_device_name() if sizes.device == "cuda" else "cpu",
        "torch": torch.__version__,
        "peak_tflops": args.peak_tflops,
        "peak_gbps": args.peak_gbps,
        "seconds": time.perf_counter() - start,
        "parts": results,
    }
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
