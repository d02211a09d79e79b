"""One GRPO group's forward + backward in the update: every response padded with its own copy of the prompt
(`share_prompts: false`) vs the prompt once, packed with its responses (`share_prompts: true`, the default).

    python bench/shared_prompts.py                       # SmolLM2-135M (rlvr models fetch smollm2-135m-instruct)
    python bench/shared_prompts.py --model tiny --repeats 2      # seconds: the smoke test runs this
    python bench/shared_prompts.py --n 16 --prompt-tokens 200

The group is what the smollm2-grpo recipe trains on: a `words` problem rendered through the model's chat template
(~60 tokens with SmolLM2's default system prompt), `--n` responses of lengths drawn uniformly from
[--min-tokens, --max-tokens] (random ids: the cost does not depend on which tokens), all in one micro-batch, fp32,
the per-token log-probs at the completion tokens summed and backpropagated (entropy detached, as the update logs
it). One untimed warm-up each, then `--repeats` timed pairs in alternating order, so drift on a shared machine hits
both. Also checked: both give the same log-probs (max |Δ|) and the same gradient (cosine). Reported: median seconds
of each side, the median of the paired ratios padded / shared, and the tokens each one runs through the backbone.
The last line of stdout is one JSON object (--json: stdout is only that).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

import torch

from rlvr.models.logprobs import completion_mask, shared_prompt_logprobs, token_logprobs


def group(
    tokenizer: Any, args: argparse.Namespace, vocab: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask) (n, T) right-padded, and prompt lengths (n,), of one group."""
    g = torch.Generator().manual_seed(0)
    if args.prompt_tokens:
        prompt = torch.randint(3, vocab, (args.prompt_tokens,), generator=g).tolist()
    else:
        from rlvr.data.templates import render, resolve

        text = "Mia has 6 shells. Mia finds 4 more shells. How many shells does Mia have now?"
        prompt = tokenizer(render(resolve("plain"), text, tokenizer), add_special_tokens=False)["input_ids"]
    lengths = torch.randint(args.min_tokens, args.max_tokens + 1, (args.n,), generator=g).tolist()
    seqs = [prompt + torch.randint(3, vocab, (n,), generator=g).tolist() for n in lengths]
    T = max(map(len, seqs))
    ids = torch.zeros((args.n, T), dtype=torch.long)
    mask = torch.zeros((args.n, T), dtype=torch.long)
    for b, s in enumerate(seqs):
        ids[b, : len(s)], mask[b, : len(s)] = torch.tensor(s), 1
    return ids, mask, torch.tensor([len(prompt)] * args.n)


def forward_backward(model: Any, rows: tuple[torch.Tensor, ...], shared: bool) -> tuple[float, torch.Tensor]:
    ids, mask, prompts = rows
    model.zero_grad(set_to_none=True)
    start = time.perf_counter()
    if shared:
        out = shared_prompt_logprobs(model, ids, mask, prompts)
    else:
        out = token_logprobs(model, ids, mask, target_mask=completion_mask(mask, prompts))
    out.logp.sum().backward()
    return time.perf_counter() - start, out.logp.detach()


def grads(model: Any) -> torch.Tensor:
    return torch.cat([p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]).double()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="smollm2-135m-instruct", help="a model spec, or tiny")
    parser.add_argument("--n", type=int, default=8, help="responses in the group")
    parser.add_argument("--min-tokens", type=int, default=30)
    parser.add_argument("--max-tokens", type=int, default=128)
    parser.add_argument(
        "--prompt-tokens", type=int, default=0, help="a random prompt this long (0: a words one)"
    )
    parser.add_argument("--repeats", type=int, default=3, help="timed pairs")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    if args.model == "tiny":
        from rlvr.models.tiny import build_tiny_pair

        model, tokenizer = build_tiny_pair("llama")
    else:
        from rlvr.models.checkpoint import load_model, load_tokenizer

        model, tokenizer = load_model(args.model, dtype="float32"), load_tokenizer(args.model)
    model.train()
    rows = group(tokenizer, args, model.config.vocab_size)
    _, padded_logp = forward_backward(model, rows, shared=False)  # warm-ups, and the agreement figures
    padded_grad = grads(model)
    _, shared_logp = forward_backward(model, rows, shared=True)
    shared_grad = grads(model)
    cosine = float(padded_grad @ shared_grad / (padded_grad.norm() * shared_grad.norm()))
    del padded_grad, shared_grad
    seconds: dict[str, list[float]] = {"padded": [], "shared": []}
    for r in range(args.repeats):
        for side in ("padded", "shared") if r % 2 == 0 else ("shared", "padded"):
            seconds[side].append(forward_backward(model, rows, side == "shared")[0])
    paired = [a / b for a, b in zip(seconds["padded"], seconds["shared"], strict=True)]
    ids, mask, prompts = rows
    summary = {
        "model": args.model,
        "threads": torch.get_num_threads(),
        "n": args.n,
        "prompt_tokens": int(prompts[0]),
        "response_tokens": int(mask.sum() - prompts.sum()),
        "backbone_tokens": {"padded": ids.numel(), "shared": int(prompts[0] + mask.sum() - prompts.sum())},
        "padded_s": statistics.median(seconds["padded"]),
        "shared_s": statistics.median(seconds["shared"]),
        "speedup": statistics.median(paired),
        "speedup_range": [min(paired), max(paired)],
        "logp_abs_diff_max": float((padded_logp - shared_logp).abs().max()),
        "grad_cosine": cosine,
    }
    if not args.json:
        print(
            f"{args.model}: a group of {args.n} responses ({summary['response_tokens']} tokens) to a "
            f"{summary['prompt_tokens']}-token prompt, forward + backward, median of {args.repeats}\n"
            f"  padded (share_prompts: false): {summary['padded_s']:.2f} s, "
            f"{summary['backbone_tokens']['padded']} backbone tokens\n"
            f"  shared (share_prompts: true):  {summary['shared_s']:.2f} s, "
            f"{summary['backbone_tokens']['shared']} backbone tokens\n"
            f"  padded / shared: {summary['speedup']:.2f}x (paired {min(paired):.2f}-{max(paired):.2f}); "
            f"max |Δ log p| {summary['logp_abs_diff_max']:.1e}, gradient cosine {cosine:.6f}"
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
