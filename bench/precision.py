"""Training compute precision on CPU: one forward + backward through rlvr's `token_logprobs`, fp32 vs bf16 autocast.

    python bench/precision.py                            # SmolLM2-135M (fetched: rlvr models fetch) and the tiny model
    python bench/precision.py --threads 2 --batch 8 --seq 256 --repeats 3
    python bench/precision.py --model none               # the tiny model only

What a training micro-batch does (SFT or the RL update): `--batch` rows of `--seq` tokens of real text (GSM8K test
problems and solutions from $RLVR_DATA_DIR, else random ids), the LM head on every position, the summed log-prob
backpropagated into fp32 parameters; once with no autocast (fp32) and once under `torch.autocast("cpu",
dtype=torch.bfloat16)` (rlvr's `dtype: bfloat16`, `rlvr.train.precision`). One untimed warm-up each, then
`--repeats` timed pairs, alternating which goes first, so drift on a shared machine hits both; reported: median
seconds and the median of the paired ratios fp32 / bf16 (above 1: bf16 is faster).

Accuracy, from the warm-up runs: |log p(bf16) - log p(fp32)| per token (mean and max), the cosine similarity of the
two whole gradients, and the same log-prob difference when the LM head alone runs in fp32 after a bf16 backbone
(the logits are otherwise rounded to bf16 before `token_logprobs` upcasts them).

A matmul of the model's shape (2048 x H x 4H) in each dtype gives the kernels' own ratio. On a machine shared with
other jobs every figure is noisy: compare the two sides of one run, not runs. One thread by default: on the shared
2-core development machine two threads made every figure ~3x slower and the paired ratios erratic (0.67-1.58).
The last line of stdout is one JSON object with every figure (--json: stdout is only that object).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import torch

from rlvr.models.logprobs import head_logprobs, token_logprobs
from rlvr.train import precision


def text_ids(tokenizer: Any, batch: int, seq: int, vocab: int) -> torch.Tensor:
    """(batch, seq) ids of consecutive GSM8K problems + solutions, or random ids without the data."""
    path = Path(os.environ.get("RLVR_DATA_DIR", "")) / "eval" / "gsm8k_test.jsonl"
    if not path.is_file():
        return torch.randint(3, vocab, (batch, seq), generator=torch.Generator().manual_seed(0))
    ids: list[int] = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            record = json.loads(line)
            ids += tokenizer(record["problem"] + "\n" + record["solution"] + "\n")["input_ids"]
            if len(ids) >= batch * seq:
                break
    return torch.tensor(ids[: batch * seq]).view(batch, seq)


def forward_backward(model: Any, ids: torch.Tensor, dtype: str) -> tuple[float, torch.Tensor]:
    """Seconds of one forward + backward, and the (B, T) log-probs; gradients are left in `.grad`."""
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    with precision.autocast("bfloat16" if dtype == "bf16" else "float32", torch.device("cpu")):
        out = token_logprobs(model, ids, entropy="none")
    out.logp.sum().backward()
    return time.perf_counter() - start, out.logp.detach()


@torch.no_grad()
def fp32_head_logp(model: Any, ids: torch.Tensor) -> torch.Tensor:
    """(N,) log-probs with a bf16-autocast backbone and the LM head in fp32."""
    with precision.autocast("bfloat16", torch.device("cpu")):
        hidden = model.get_decoder()(input_ids=ids, use_cache=False).last_hidden_state  # (B, T, H)
    head = model.get_output_embeddings()
    logp, _ = head_logprobs(
        hidden[:, :-1].reshape(-1, hidden.shape[-1]).float(),
        head.weight,
        ids[:, 1:].reshape(-1),
        entropy="none",
    )
    return logp


def grad_cosine(model: Any, reference: dict[str, torch.Tensor]) -> float:
    dot = norm_a = norm_b = 0.0
    for name, p in model.named_parameters():
        if p.grad is None:
            continue
        a, b = p.grad.double(), reference[name].double()
        dot, norm_a, norm_b = (
            dot + float((a * b).sum()),
            norm_a + float((a * a).sum()),
            norm_b + float((b * b).sum()),
        )
    return dot / max((norm_a * norm_b) ** 0.5, 1e-30)


def measure(name: str, model: Any, ids: torch.Tensor, repeats: int) -> dict[str, Any]:
    model.train()
    _, logp32 = forward_backward(model, ids, "fp32")  # warm-up, and the reference figures
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    _, logp16 = forward_backward(model, ids, "bf16")
    cosine = grad_cosine(model, grads)
    del grads
    model.zero_grad(set_to_none=True)
    diff = (logp16 - logp32)[:, 1:].abs()  # position 0 has no prediction
    head_diff = (fp32_head_logp(model, ids) - logp32[:, 1:].reshape(-1)).abs()
    seconds: dict[str, list[float]] = {"fp32": [], "bf16": []}
    for r in range(repeats):
        for dtype in ("fp32", "bf16") if r % 2 == 0 else ("bf16", "fp32"):
            seconds[dtype].append(forward_backward(model, ids, dtype)[0])
    model.zero_grad(set_to_none=True)
    paired = [a / b for a, b in zip(seconds["fp32"], seconds["bf16"], strict=True)]
    return {
        "model": name,
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokens": ids.numel(),
        "fp32_s": statistics.median(seconds["fp32"]),
        "bf16_s": statistics.median(seconds["bf16"]),
        "fp32_over_bf16": statistics.median(paired),
        "fp32_over_bf16_range": [min(paired), max(paired)],
        "logp_abs_diff_mean": float(diff.mean()),
        "logp_abs_diff_max": float(diff.max()),
        "logp_abs_diff_mean_fp32_head": float(head_diff.mean()),
        "logp_abs_diff_max_fp32_head": float(head_diff.max()),
        "grad_cosine": cosine,
    }


def matmul_ratio(hidden: int) -> float:
    """fp32 seconds / bf16 seconds of a (2048, H) @ (H, 4H) matmul (repeated to ~20 GFLOP each)."""
    repeats = max(5, int(2e10 / (2 * 2048 * hidden * 4 * hidden)))
    times = []
    for dtype in (torch.float32, torch.bfloat16):
        a, b = torch.randn(2048, hidden, dtype=dtype), torch.randn(hidden, 4 * hidden, dtype=dtype)
        a @ b
        start = time.perf_counter()
        for _ in range(repeats):
            a @ b
        times.append(time.perf_counter() - start)
    return times[0] / times[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--model", default="smollm2-135m-instruct", help="a model spec (name, directory, .gguf), or none"
    )
    parser.add_argument("--batch", type=int, default=2, help="sequences per micro-batch")
    parser.add_argument("--seq", type=int, default=256, help="tokens per sequence")
    parser.add_argument("--repeats", type=int, default=2, help="timed pairs (the tiny model: 10x as many)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    start = time.time()
    results = []
    from rlvr.models.tiny import build_tiny_pair

    model, tokenizer = build_tiny_pair("qwen2")
    ids = text_ids(tokenizer, args.batch, args.seq, len(tokenizer))
    results.append(measure("tiny (qwen2, hidden 64)", model, ids, 10 * args.repeats))
    results[-1]["matmul_fp32_over_bf16"] = matmul_ratio(64)
    if args.model != "none":
        from rlvr.models.checkpoint import load_model, load_tokenizer

        model, tokenizer = load_model(args.model, dtype="float32"), load_tokenizer(args.model)
        ids = text_ids(tokenizer, args.batch, args.seq, model.config.vocab_size)
        results.append(measure(Path(args.model).name or args.model, model, ids, args.repeats))
        results[-1]["matmul_fp32_over_bf16"] = matmul_ratio(model.config.hidden_size)
    summary = {
        "threads": torch.get_num_threads(),
        "batch": args.batch,
        "seq": args.seq,
        "repeats": args.repeats,
        "seconds": time.time() - start,
        "models": results,
    }
    if not args.json:
        print(f"forward + backward of {args.batch} x {args.seq} tokens, {summary['threads']} threads, median")
        for r in results:
            low, high = r["fp32_over_bf16_range"]
            print(
                f"{r['model']} ({r['parameters'] / 1e6:.1f}M): fp32 {r['fp32_s']:.3f} s, bf16 {r['bf16_s']:.3f} s, "
                f"fp32/bf16 {r['fp32_over_bf16']:.2f}x (pairs {low:.2f}-{high:.2f}; matmul alone "
                f"{r['matmul_fp32_over_bf16']:.2f}x)\n"
                f"  |logp bf16 - fp32| mean {r['logp_abs_diff_mean']:.2e} max {r['logp_abs_diff_max']:.2e}; "
                f"fp32 head: mean {r['logp_abs_diff_mean_fp32_head']:.2e} max "
                f"{r['logp_abs_diff_max_fp32_head']:.2e}; gradient cosine {r['grad_cosine']:.5f}"
            )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
