"""The reference engine: transformers' `model.generate`, slow and obviously right.

Every other backend is tested against this one. Log-probs come from the raw logits `generate` returns
(`output_logits`, before temperature and top-k/top-p), so they are the policy's own, at temperature 1. Memory grows
with batch × new tokens × vocabulary (every step's logits are kept): use it for tests and small runs.
"""

from __future__ import annotations

from typing import Any

import torch

from rlvr.rollout.text import completion_text, eos_ids, find_end, prepare
from rlvr.rollout.types import Rollout, SamplingParams


class HFEngine:
    """`RolloutEngine` over `model.generate`. Seeded sampling forks the global RNG, so callers' streams don't move."""

    def __init__(self, model: Any, tokenizer: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        model, tokenizer = self.model, self.tokenizer
        device = next(model.parameters()).device
        prompt_ids, limits, eos = prepare(model, tokenizer, prompts, params.max_new_tokens, params.ignore_eos)
        if not prompt_ids:
            return []
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids(model, tokenizer)[0]

        # Left padding, so every row's last prompt token sits in the same column.
        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.full((len(prompts), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for i, ids in enumerate(prompt_ids):
            input_ids[i, width - len(ids) :] = torch.tensor(ids)
            attention_mask[i, width - len(ids) :] = 1

        # Every setting as a keyword: keywords override the model's generation config, even with None (ignore_eos),
        # where a GenerationConfig's None would be filled from it.
        options: dict[str, Any] = dict(
            do_sample=params.temperature > 0,
            max_new_tokens=min(params.max_new_tokens, max(limits)),
            eos_token_id=list(eos) or None,
            pad_token_id=pad,
            stop_strings=list(params.stop) or None,
            tokenizer=tokenizer if params.stop else None,
            output_logits=True,
            return_dict_in_generate=True,
            # SamplingParams is the whole truth: switch off what a checkpoint's generation_config may turn on
            # (Qwen2.5-Instruct ships repetition_penalty 1.05 and top_k 20, which would apply otherwise).
            num_beams=1,
            repetition_penalty=1.0,
            no_repeat_ngram_size=0,
            min_new_tokens=0,
        )
        if params.temperature > 0:  # top_k=0 turns top-k off (no default top-k of 50 sneaks in)
            options.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
            options.update(min_p=0.0, typical_p=1.0, epsilon_cutoff=0.0, eta_cutoff=0.0)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = model.generate(
                # Rows i*n .. i*n+n-1 are prompt i's samples (greedy refuses num_return_sequences > 1).
                input_ids=input_ids.repeat_interleave(params.n, dim=0).to(device),
                attention_mask=attention_mask.repeat_interleave(params.n, dim=0).to(device),
                **options,
            )
            new = out.sequences[:, width:]  # (B*n, T) generated tokens, pad after a row finished
            # Raw logits (B*n, V) of each step, at the sampling temperature (1 when greedy); one step at a time,
            # never a (B*n, T, V) float copy.
            scale = params.temperature or 1.0
            logp = torch.stack(
                [
                    torch.log_softmax(step.float() / scale, dim=-1).gather(-1, new[:, t, None])[:, 0]
                    for t, step in enumerate(out.logits)
                ],
                dim=1,
            )  # (B*n, T)

        new_rows, logp_rows = new.tolist(), logp.tolist()
        rollouts = []
        for row, (ids, lps) in enumerate(zip(new_rows, logp_rows, strict=True)):
            i, j = divmod(row, params.n)
            end = find_end(tokenizer, ids, 0, limits[i], eos, params.stop)
            keep, reason = end if end is not None else (len(ids), "length")
            rollouts.append(
                Rollout(
                    prompt_index=i,
                    sample_index=j,
                    prompt_ids=prompt_ids[i],
                    completion_ids=ids[:keep],
                    text=completion_text(tokenizer, ids[:keep], eos),
                    logprobs=lps[:keep],
                    finish_reason=reason,
                )
            )
        return rollouts
