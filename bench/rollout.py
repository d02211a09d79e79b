"""Rollout throughput: FastEngine vs HFEngine (transformers `generate`) on the same model, prompts and settings,
and the fast engine's fraction of the machine's memory-bandwidth roofline.

    python bench/rollout.py                                   # tiny Qwen2, CPU, 16 prompts x n=4 x 128 new tokens
    python bench/rollout.py --arch llama --threads 1 --repeats 5
    python bench/rollout.py --model smollm2-135m-instruct --dtype bfloat16   # real model: 16 x n=8 x 128, words
    python bench/rollout.py --model runs/rl-smollm2-grpo/final --prompts 4 --n 2 --max-new-tokens 32
    python bench/rollout.py --device cuda --model-shape qwen2.5-1.5b              # 64 x 128, both engines
    python bench/rollout.py --device cuda --model-shape qwen2.5-1.5b --engines fast --prompts 64 --n 8 \
        --max-new-tokens 1024                                                  # RL-sized; HF would keep 160 GB of logits

Both engines sample the same prompts with the same SamplingParams, side by side in one process: one short untimed
warm-up call each (8 new tokens), then `--repeats` timed calls, alternating, so drift on a shared machine hits both.
eos is ignored (`ignore_eos`) so every sequence runs to max_new_tokens and both engines do the same work; the table
reports the tokens actually generated. Tokens/s = generated tokens / wall time of `generate` (prefill included).

Models: the tiny random-init one (default); --model-shape qwen2.5-1.5b, random-init with Qwen2.5-1.5B's shape (bf16
on cuda) and a filler tokenizer of its vocabulary size; or --model NAME|PATH, a registered model or a checkpoint
directory (`rlvr.models.registry.resolve`, as `rlvr eval` takes it) with its own tokenizer, sampling prompts of the
`words` set rendered with the `plain` template (the smollm2-grpo recipe's), in --dtype on both engines.

Roofline: (bytes of weights + KV cache read per decode step) summed over the steps, / wall time, / the peak
bandwidth. The peak is measured here (`memory_bandwidth`: timed sums and copies of a 512 MiB tensor, on the device,
with the bench's thread count) unless --peak-gbps gives it. Only FastEngine's fraction is meaningful (HF keeps
every step's logits, and its speed is not what the bound is about); on a CPU with many rows decoding is partly
compute-bound, so the fraction says how far from the bandwidth limit the engine is, not that it is the limit.
The last line of stdout is one JSON object with every figure, `speedup` and `roofline_fraction` among them
(--json: stdout is only that object).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import replace
from typing import Any

import torch

from rlvr.models.tiny import ARCHS, build_tiny_model
from rlvr.models.tokenizer import CHARS, SPECIAL, build_tiny_tokenizer
from rlvr.rollout.fast import FastEngine
from rlvr.rollout.hf import HFEngine
from rlvr.rollout.layers import unsupported
from rlvr.rollout.types import RolloutEngine, SamplingParams

WARMUP_TOKENS = 8  # new tokens of the untimed warm-up call: allocator, kernels, lazy imports

QUESTIONS = [
    "What is 17 * 23?",
    "Solve for x: 3x + 7 = 22.",
    "How many primes are there below 50?",
    "A train travels 120 km in 1.5 hours. What is its average speed in km/h?",
    "Compute the sum of the first 100 positive integers.",
    "What is the remainder when 2^10 is divided by 7?",
    "If a rectangle has perimeter 30 and width 5, what is its area?",
    "Simplify (x^2 - 9) / (x - 3).",
]

# Qwen2.5-1.5B: hidden 1536, 28 layers, 12 heads (2 KV), MLP 8960, vocabulary 151936, tied embeddings.
QWEN25_15B: dict[str, Any] = dict(
    hidden_size=1536,
    num_hidden_layers=28,
    num_attention_heads=12,
    num_key_value_heads=2,
    intermediate_size=8960,
    vocab_size=151936,
    max_position_embeddings=32768,
    rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
    rms_norm_eps=1e-6,
    tie_word_embeddings=True,
)


def filler_tokenizer(vocab_size: int) -> Any:
    """The tiny character tokenizer widened to `vocab_size` with filler tokens, so every sampled id decodes."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    names = SPECIAL + CHARS
    vocab = {tok: i for i, tok in enumerate(names + [f"<f{i}>" for i in range(vocab_size - len(names))])}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token="?"))
    core.pre_tokenizer = pre_tokenizers.Split(pattern="", behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<|endoftext|>", unk_token="?"
    )
    tokenizer.chat_template = build_tiny_tokenizer().chat_template
    return tokenizer


def build(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """The model (eval mode, on the device), a tokenizer whose vocabulary covers it, and the prompt texts."""
    if args.model:
        return load_real(args)
    model, tokenizer = synthetic(args)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True
        )
        for q in (QUESTIONS * args.prompts)[: args.prompts]
    ]
    return model, tokenizer, prompts


def load_real(args: argparse.Namespace) -> tuple[Any, Any, list[str]]:
    """A registered model or checkpoint directory in --dtype, its tokenizer, and the first --prompts `words`
    problems rendered with the `plain` template (the model's own chat template and system prompt)."""
    from rlvr.data.registry import load_dataset
    from rlvr.data.templates import render
    from rlvr.models.checkpoint import load_model, load_tokenizer

    model = load_model(args.model, dtype=args.dtype, device=args.device).eval()
    tokenizer = load_tokenizer(args.model, require_chat_template=True)
    problems = load_dataset("words")[: args.prompts]
    return model, tokenizer, [render("plain", p.problem, tokenizer) for p in problems]


def synthetic(args: argparse.Namespace) -> tuple[Any, Any]:
    """The tiny model and tokenizer, or a random-init Qwen2.5-1.5B shape with a filler tokenizer."""
    if args.model_shape == "tiny":
        model, tokenizer = build_tiny_model(args.arch), build_tiny_tokenizer()
        dtype = torch.float32 if args.dtype == "auto" else getattr(torch, args.dtype)
        return model.to(device=args.device, dtype=dtype), tokenizer
    from transformers import AutoModelForCausalLM, Qwen2Config

    dtype = (
        (torch.bfloat16 if args.device == "cuda" else torch.float32)
        if args.dtype == "auto"
        else getattr(torch, args.dtype)
    )
    config = Qwen2Config(**QWEN25_15B, pad_token_id=0, eos_token_id=1, bos_token_id=None)
    torch.manual_seed(0)
    with torch.device(args.device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval(), filler_tokenizer(config.vocab_size)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def timed(
    engine: RolloutEngine, prompts: list[str], params: SamplingParams, device: str
) -> tuple[float, int]:
    """Seconds and generated tokens of one `generate` call."""
    sync(device)
    start = time.perf_counter()
    rollouts = engine.generate(prompts, params)
    sync(device)
    return time.perf_counter() - start, sum(len(r.completion_ids) for r in rollouts)


def measure(
    engines: dict[str, RolloutEngine], prompts: list[str], params: SamplingParams, args: argparse.Namespace
) -> dict[str, list[tuple[float, int]]]:
    """(seconds, tokens) of each engine's timed calls, after one short warm-up call each."""
    warm = replace(params, max_new_tokens=min(WARMUP_TOKENS, params.max_new_tokens))
    for engine in engines.values():
        timed(engine, prompts, warm, args.device)
    runs: dict[str, list[tuple[float, int]]] = {name: [] for name in engines}
    for _ in range(args.repeats):
        for name, engine in engines.items():
            runs[name].append(timed(engine, prompts, params, args.device))
    return runs


def memory_bandwidth(device: str, mib: int = 512, repeats: int = 5) -> float:
    """GB/s this machine moves with the bench's thread count: the best of timed reads (a sum) and copies (read +
    write, both counted) of a `mib` MiB float32 tensor on `device`, far larger than any cache."""
    a = torch.ones(mib * 2**18, device=device)
    b = torch.empty_like(a)
    best = 0.0
    for _ in range(repeats):
        for work, passes in ((lambda: a.sum(), 1), (lambda: b.copy_(a), 2)):
            sync(device)
            start = time.perf_counter()
            work()
            sync(device)
            best = max(best, passes * a.numel() * a.element_size() / (time.perf_counter() - start) / 1e9)
    return best


def bandwidth(
    model: Any, prompt_tokens: list[int], args: argparse.Namespace, seconds: float, peak_gbps: float
) -> dict[str, float]:
    """Bytes a decode step must read (every weight once, plus each live sequence's KV cache so far), summed
    over the run's steps and divided by its wall time: the fraction of peak bandwidth the engine reaches."""
    config = model.config
    weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())  # tied embeddings once
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    element = next(model.parameters()).element_size()
    kv_per_token = config.num_hidden_layers * 2 * config.num_key_value_heads * head_dim * element  # bytes
    steps = args.max_new_tokens
    context = (  # tokens of KV cache read, summed over rows and steps
        sum(p * args.n for p in prompt_tokens) * steps + len(prompt_tokens) * args.n * steps * (steps - 1) / 2
    )
    total = weight_bytes * steps + kv_per_token * context
    return {
        "gb_read": total / 1e9,
        "gb_per_s": total / seconds / 1e9,
        "fraction": total / seconds / 1e9 / peak_gbps,
    }


def summarize(
    model: Any, prompt_tokens: list[int], args: argparse.Namespace, runs: dict[str, list[tuple[float, int]]]
) -> dict[str, Any]:
    """Every figure of the run: per-engine rates, the paired speedup, the roofline fractions."""
    results: dict[str, Any] = {}
    for name, timings in runs.items():
        rates = [tokens / seconds for seconds, tokens in timings]
        results[name] = {
            "tokens_per_s": statistics.median(rates),
            "tokens_per_s_min": min(rates),
            "tokens_per_s_max": max(rates),
            "seconds": statistics.median(s for s, _ in timings),
            "tokens": timings[0][1],
        }
    summary: dict[str, Any] = {
        "device": args.device,
        "model": args.model or args.model_shape,
        "arch": model.config.model_type,
        "dtype": str(next(model.parameters()).dtype).removeprefix("torch."),
        "parameters": sum(p.numel() for p in model.parameters()),
        "threads": torch.get_num_threads(),
        "sequences": len(prompt_tokens) * args.n,
        "max_new_tokens": args.max_new_tokens,
        "mean_prompt_tokens": statistics.mean(prompt_tokens),
        "temperature": args.temperature,
        "repeats": args.repeats,
        "engines": results,
    }
    if "fast" in results and "hf" in results:
        # Each fast call ran right before an hf call: the ratio within a pair shares the machine's state, so the
        # median of paired ratios is steadier on a shared machine than the ratio of medians.
        paired = [(f[1] / f[0]) / (h[1] / h[0]) for f, h in zip(runs["fast"], runs["hf"], strict=True)]
        summary["speedup"] = statistics.median(paired)
        summary["speedup_min"], summary["speedup_max"] = min(paired), max(paired)
    peak = args.peak_gbps or memory_bandwidth(args.device)
    summary["peak_gbps"], summary["peak_gbps_from"] = peak, "--peak-gbps" if args.peak_gbps else "measured"
    summary["bandwidth"] = {
        name: bandwidth(model, prompt_tokens, args, r["seconds"], peak) for name, r in results.items()
    }
    if "fast" in results:
        summary["roofline_fraction"] = summary["bandwidth"]["fast"]["fraction"]
    return summary


def report(summary: dict[str, Any]) -> None:
    """The readable table."""
    s = summary
    print(
        f"{s['model']} ({s['arch']}, {s['parameters'] / 1e6:.1f}M) {s['dtype']} on {s['device']} "
        f"({s['threads']} threads): {s['sequences']} sequences x {s['max_new_tokens']} new tokens, "
        f"prompts ~{s['mean_prompt_tokens']:.0f} tokens, temperature {s['temperature']}, "
        f"median of {s['repeats']}"
    )
    print(f"{'engine':8} {'tokens/s':>10} {'min':>10} {'max':>10} {'seconds':>8} {'tokens':>8}")
    for name, r in s["engines"].items():
        print(
            f"{name:8} {r['tokens_per_s']:10.0f} {r['tokens_per_s_min']:10.0f} {r['tokens_per_s_max']:10.0f} "
            f"{r['seconds']:8.3f} {r['tokens']:8d}"
        )
    if "speedup" in s:
        print(
            f"fast / hf: {s['speedup']:.2f}x (median of paired calls; "
            f"{s['speedup_min']:.2f}-{s['speedup_max']:.2f}x)"
        )
    for name, b in s["bandwidth"].items():
        print(
            f"{name}: {b['gb_read']:.1f} GB read, {b['gb_per_s']:.1f} GB/s = {b['fraction']:.1%} of "
            f"{s['peak_gbps']:.1f} GB/s peak ({s['peak_gbps_from']})"
        )


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument(
        "--model", help="a registered model name or a checkpoint directory (else a synthetic one)"
    )
    parser.add_argument("--model-shape", default="tiny", choices=["tiny", "qwen2.5-1.5b"])
    parser.add_argument("--arch", default="qwen2", choices=ARCHS, help="tiny model's architecture (family)")
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"])
    parser.add_argument("--prompts", type=int, default=16, help="distinct prompts")
    parser.add_argument("--n", type=int, help="samples per prompt (default: 8 with --model, else 4)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--top-k", type=int, default=0)
    parser.add_argument(
        "--repeats", type=int, help="timed calls per engine, alternating (default: 1 with --model, else 9)"
    )
    parser.add_argument("--engines", default="fast,hf", help="comma-separated: fast, hf")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument(
        "--peak-gbps", type=float, help="peak memory bandwidth, GB/s (default: measured here; H200: 4800)"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)
    if args.model and args.model_shape != "tiny":
        parser.error("--model and --model-shape name the model two ways: give one")
    args.n = args.n or (8 if args.model else 4)
    args.repeats = args.repeats or (1 if args.model else 9)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model, tokenizer, prompts = build(args)
    params = SamplingParams(
        n=args.n,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_new_tokens,
        seed=0,
        ignore_eos=True,  # every sequence runs to max_new_tokens: equal work for both engines
    )
    names = args.engines.split(",")
    if "fast" in names and (reason := unsupported(model)) is not None:
        print(f"error: {reason}", file=sys.stderr)
        return 2
    engines = {name: {"fast": FastEngine, "hf": HFEngine}[name](model, tokenizer) for name in names}
    runs = measure(engines, prompts, params, args)
    prompt_tokens = [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]
    summary = summarize(model, prompt_tokens, args, runs)
    if not args.json:
        report(summary)
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
