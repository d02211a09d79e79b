"""Sample real small-model responses for the verifier's hand-adjudicated test set (tests/data/smollm2_responses.jsonl).

    RLVR_DATA_DIR=../shared/data python bench/smollm2_responses.py --model smollm2-135m-instruct \\
        -o /tmp/smollm2_raw.jsonl --gsm8k 176 --word 128 --batch 76   # ~30 minutes on a shared 2-core CPU

tests/data/README.md has the three commands that made the committed set (the third adds `--easy` problems).

SmolLM2-135M-Instruct answers GSM8K test problems and rlvr's own small word problems and additions
(`word_problems`, seeded) in its chat template, sampled at temperature 0.8 with at most 256 new tokens: the
responses that hit the limit are kept, they are the "truncated reasoning" case. Three prompt styles rotate over the
problems: the question alone, the question asking for step-by-step reasoning ending in "The answer is N.", and the
question asking for the answer in `\\boxed{}`.

The output has one line per response with `label` null: a person adjudicates each one (the rules are in
tests/data/README.md) and the labeled file is what the tests read. Sampling is seeded, but the completions are the
same only on the same torch build and hardware, so a regenerated file needs adjudicating again. GSM8K problem texts
are not written (they are the benchmark's, not ours): a row names its problem by id, `--with-problems` adds the text
for reading while adjudicating.
"""

from __future__ import annotations

import argparse
import json
import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

STYLES = {
    "plain": "{problem}",
    "answer_is": '{problem}\nReason step by step, then end with "The answer is N." where N is the final number.',
    "boxed": "{problem}\nPlease reason step by step, and put your final answer within \\boxed{{}}.",
}
NAMES = ("Tom", "Mia", "Sam", "Ana", "Leo", "Zoe", "Ben", "Ivy")


@dataclass(frozen=True, slots=True)
class Item:
    """A problem to sample: `problem` is None for GSM8K rows in the written file (see the module docstring)."""

    id: str
    source: str  # "gsm8k", "addition" or "word"
    problem: str
    gold: str


def word_problems(count: int, seed: int = 0) -> list[Item]:
    """`count` seeded additions (bare, two- and three-term) and one- to three-step word problems with integer golds."""
    rng = random.Random(seed)
    out: list[Item] = []
    for i in range(count):
        kind = i % 8
        name, n = rng.choice(NAMES), rng.randint
        if kind == 0:
            a, b = n(10, 999), n(10, 999)
            text, gold, source = f"{a}+{b}", a + b, "addition"
        elif kind == 1:
            a, b = n(10, 99), n(10, 99)
            text, gold, source = f"What is {a} + {b}?", a + b, "addition"
        elif kind == 2:
            a, b, c = n(2, 60), n(2, 60), n(2, 60)
            text, gold, source = f"What is {a} + {b} + {c}?", a + b + c, "addition"
        elif kind == 3:
            a, b = n(5, 30), n(2, 15)
            c = n(1, a + b - 1)
            text = f"{name} has {a} apples, buys {b} more and gives away {c}. How many apples does {name} have now?"
            gold, source = a + b - c, "word"
        elif kind == 4:
            p, k = n(2, 9), n(2, 6)
            bill = 50 if p * k < 50 else 100
            text = f"A pencil costs {p} dollars. {name} buys {k} pencils and pays with a {bill}-dollar bill. How much change does {name} get?"
            gold, source = bill - p * k, "word"
        elif kind == 5:
            p, d, q = n(5, 30), n(2, 7), n(3, 40)
            text = f"{name} reads {p} pages every day for {d} days, then {q} more pages on Sunday. How many pages does {name} read in total?"
            gold, source = p * d + q, "word"
        elif kind == 6:
            k, each = n(2, 8), n(2, 12)
            text = f"{name} has {k * each} candies and shares them equally among {k} friends. How many candies does each friend get?"
            gold, source = each, "word"
        else:
            a = n(20, 40)
            b = n(5, a - 5)
            text = f"There are {a} students in a class and {b} of them are girls. How many boys are in the class?"
            gold, source = a - b, "word"
        out.append(Item(f"{source}-{i}", source, text, str(gold)))
    return out


def easy_problems(count: int, seed: int = 0) -> list[Item]:
    """`count` one-step problems the 135M model often gets right: small sums and differences, bare or in words."""
    rng = random.Random(seed + 1)
    out: list[Item] = []
    for i in range(count):
        name, a, b = rng.choice(NAMES), rng.randint(2, 20), rng.randint(2, 9)
        kind = i % 4
        if kind == 0:
            text, gold = f"What is {a} + {b}?", a + b
        elif kind == 1:
            text, gold = f"{name} has {a} apples and buys {b} more. How many apples does {name} have?", a + b
        elif kind == 2:
            text, gold = f"{name} has {a + b} balloons and {b} of them pop. How many balloons are left?", a
        else:
            text, gold = f"A box holds {b} pens. How many pens are in {a} boxes?", a * b
        tag = f"easy-{i}" if seed == 0 else f"easy-s{seed}-{i}"
        out.append(Item(tag, "addition" if kind == 0 else "word", text, str(gold)))
    return out


def gsm8k_items(path: Path, count: int, seed: int = 0) -> list[Item]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    chosen = sorted(random.Random(seed).sample(range(len(rows)), count))
    return [Item(rows[i]["id"], "gsm8k", rows[i]["problem"], str(rows[i]["answer"])) for i in chosen]


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="smollm2-135m-instruct", help="SmolLM2-135M-Instruct (a model spec)")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--gsm8k", type=int, default=180, help="GSM8K test problems")
    ap.add_argument("--word", type=int, default=128, help="generated additions and word problems")
    ap.add_argument("--easy", type=int, default=0, help="generated one-step problems")
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--max-new-tokens", type=int, default=256)
    ap.add_argument("--batch", type=int, default=64, help="prompts per generate call")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2+ contend badly on a shared CPU)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--with-problems", action="store_true", help="also write GSM8K problem texts")
    args = ap.parse_args(argv)

    import torch

    from rlvr.data.registry import data_dir
    from rlvr.models.checkpoint import load_model, load_tokenizer
    from rlvr.rollout import local_engine
    from rlvr.rollout.types import SamplingParams

    torch.set_num_threads(args.threads)
    root = data_dir()
    if root is None:
        raise SystemExit("set RLVR_DATA_DIR to the directory holding eval/gsm8k_test.jsonl")
    items = gsm8k_items(root / "eval" / "gsm8k_test.jsonl", args.gsm8k, args.seed) if args.gsm8k else []
    items += word_problems(args.word, args.seed) + easy_problems(args.easy, args.seed)
    styles = list(STYLES)
    tokenizer = load_tokenizer(args.model)
    engine = local_engine("fast", load_model(args.model), tokenizer)
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": STYLES[styles[k % 3]].format(problem=it.problem)}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for k, it in enumerate(items)
    ]
    with open(args.out, "w", encoding="utf-8") as f:
        for start in range(0, len(items), args.batch):
            params = SamplingParams(
                temperature=args.temperature, max_new_tokens=args.max_new_tokens, seed=args.seed + start
            )
            rollouts = engine.generate(prompts[start : start + args.batch], params)
            for r in rollouts:
                k = start + r.prompt_index
                row = asdict(items[k])
                if items[k].source == "gsm8k" and not args.with_problems:
                    row["problem"] = None
                row |= {"style": styles[k % 3], "response": r.text, "finish_reason": r.finish_reason}
                row |= {"final_form": True, "label": None, "note": ""}
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
            f.flush()
            print(f"{min(start + args.batch, len(items))}/{len(items)}", flush=True)


if __name__ == "__main__":
    main()
