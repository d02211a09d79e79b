"""Supervised examples: where they come from, how a prompt and its target become token ids, and how a batch of them
becomes model input (packed into one row, or padded).

Sources: a registered dataset or any problem file whose records carry a worked `solution` (the target), a JSONL of
`{"problem", "response"}` (the prompt is the template applied to the problem), or a JSONL of `{"messages": [...]}`
whose last message is the assistant's (the chat template applied as is). The target is whatever the chat template
puts after the generation prompt for the assistant's turn, end-of-turn token included, so the model learns to stop
where generation stops; without a chat template (r1_zero) it is " " + response + eos. A template's assistant
prefix (`<think>\n`) belongs to the prompt: the target is what follows it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from rlvr.data.registry import load_problems
from rlvr.data.templates import Template, messages, render, resolve
from rlvr.io import read_jsonl
from rlvr.models.logprobs import completion_mask
from rlvr.models.packing import pack


@dataclass(frozen=True, slots=True)
class Example:
    ids: list[int]  # prompt then target token ids
    prompt_len: int  # the first prompt_len ids are prompt (no loss)

    @property
    def target_tokens(self) -> int:
        return len(self.ids) - self.prompt_len


@dataclass(frozen=True, slots=True)
class Batch:
    """Model input for one micro-batch. Packed: input_ids/position_ids (1, N), attention_mask None. Padded:
    input_ids/attention_mask (B, T) right-padded, position_ids None."""

    input_ids: Tensor
    attention_mask: Tensor | None
    position_ids: Tensor | None
    target_mask: Tensor  # same shape as input_ids: tokens that carry loss

    def to(self, device: torch.device) -> Batch:
        def move(t: Tensor | None) -> Tensor | None:
            return None if t is None else t.to(device)

        return Batch(
            self.input_ids.to(device),
            move(self.attention_mask),
            move(self.position_ids),
            self.target_mask.to(device),
        )


def read_records(source: str) -> list[dict[str, Any]]:
    """Records of a file (problem files through rlvr's readers; JSONL with `response` or `messages` as is) or of a
    registered dataset."""
    path = Path(source)
    if path.suffix == ".jsonl" and path.exists():
        records = [record for _, record in read_jsonl(path)]
        if records and ("messages" in records[0] or "response" in records[0]):
            return records
    return [p.to_dict() for p in load_problems(source, require_answer=False)]


def encode(tokenizer: Any, record: dict[str, Any], template: str | Template, where: str) -> Example:
    """Token ids of one record's prompt and target. The prompt ends with the template's prefix, so the target is
    the response after it (a response that begins with the prefix, as `rlvr sample` writes them, is not taught
    the prefix twice; one that does not is the text that follows it)."""
    if "messages" in record:
        chat = record["messages"]
        if not isinstance(chat, list) or not chat or chat[-1].get("role") != "assistant":
            raise ValueError(f"{where}: `messages` must be a list ending with the assistant's message")
        prompt = tokenizer.apply_chat_template(chat[:-1], tokenize=False, add_generation_prompt=True)
        full = tokenizer.apply_chat_template(chat, tokenize=False)
    else:
        target = record.get("response") or record.get("solution")
        if not isinstance(target, str) or not target or not isinstance(record.get("problem"), str):
            raise ValueError(f"{where}: needs `problem` and a `response` or `solution` (or `messages`)")
        t = resolve(template)
        body = _after_prefix(target, t.prefix, where)
        prompt = render(t, record["problem"], tokenizer)
        if t.chat:
            chat = [*messages(t, record["problem"]), {"role": "assistant", "content": t.prefix + body}]
            full = tokenizer.apply_chat_template(chat, tokenize=False)
        else:  # raw: a space after "Assistant:" unless a prefix already continues it
            full = f"{prompt}{body if t.prefix else ' ' + body}{tokenizer.eos_token}"
    if not full.startswith(prompt):
        raise ValueError(f"{where}: the chat template renders the prompt differently inside the conversation")
    target_text = full[len(prompt) :].rstrip()  # the template's newline after end-of-turn is never generated
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    target_ids = tokenizer(target_text, add_special_tokens=False)["input_ids"]
    return Example(list(prompt_ids) + list(target_ids), len(prompt_ids))


def _after_prefix(response: str, prefix: str, where: str) -> str:
    """The response without the template's prefix (whose leading whitespace a stripped response may lack); a
    response that opens with the prefix's text but other whitespace ("<think> x" for "<think>\n") is an error,
    as neither reading of it is safe."""
    for start in (prefix, prefix.lstrip()):
        if start and response.startswith(start):
            return response[len(start) :]
    if prefix.strip() and response.lstrip().startswith(prefix.strip()):
        raise ValueError(
            f"{where}: the response starts with {response[: len(prefix) + 1]!r}, the template's prefix is "
            f"{prefix!r}: make them agree"
        )
    return response


def load_examples(
    source: str, tokenizer: Any, template: str | Template, max_length: int, limit: int | None = None
) -> tuple[list[Example], int]:
    """Encoded examples of `source` (the first `limit`), cut to `max_length` tokens; returns them and how many
    were dropped because the prompt alone fills max_length."""
    records = read_records(source)[:limit]
    examples, dropped = [], 0
    for i, record in enumerate(records, start=1):
        example = encode(tokenizer, record, template, f"{source}: record {i}")
        if example.prompt_len >= max_length:
            dropped += 1
            continue
        examples.append(Example(example.ids[:max_length], example.prompt_len))
    if not examples:
        raise ValueError(f"{source}: no usable examples (all prompts longer than max_length={max_length}?)")
    return examples, dropped


def epoch_order(size: int, seed: int, epoch: int) -> list[int]:
    """The example order of one epoch: a permutation fixed by (seed, epoch)."""
    order = list(range(size))
    random.Random(seed * 1_000_003 + epoch).shuffle(order)
    return order


def global_batch(size: int, seed: int, consumed: int, batch_size: int) -> list[int]:
    """Indices of the next `batch_size` examples after `consumed` (epochs roll over mid-batch)."""
    out: list[int] = []
    while len(out) < batch_size:
        epoch, offset = divmod(consumed, size)
        take = min(batch_size - len(out), size - offset)
        out.extend(epoch_order(size, seed, epoch)[offset : offset + take])
        consumed += take
    return out


def collate(examples: list[Example], packed: bool, pad_id: int) -> Batch:
    if packed:
        p = pack([e.ids for e in examples], [e.prompt_len for e in examples])
        return Batch(p.input_ids, None, p.position_ids, p.completion_mask)
    T = max(len(e.ids) for e in examples)
    ids = torch.full((len(examples), T), pad_id, dtype=torch.long)  # (B, T) right-padded
    attention = torch.zeros((len(examples), T), dtype=torch.long)
    for b, e in enumerate(examples):
        ids[b, : len(e.ids)] = torch.tensor(e.ids)
        attention[b, : len(e.ids)] = 1
    prompts = torch.tensor([e.prompt_len for e in examples])
    return Batch(ids, attention, None, completion_mask(attention, prompts))
