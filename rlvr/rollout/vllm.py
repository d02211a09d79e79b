"""Rollouts from vLLM's offline engine (`pip install rlvr[vllm]`, a CUDA GPU): the adapter and nothing more.

`VLLMEngine` runs `vllm.LLM` in this process, beside the trainer on the same GPU, and implements `RolloutEngine`:
prompts are encoded, budgeted and decoded by `rlvr.rollout.text` exactly as the other backends do; vLLM only samples.
After each optimizer step `load_weights(model.named_parameters())` copies the trainer's weights into vLLM's model;
`sleep()` hands vLLM's GPU memory back to the trainer between rollouts and `generate` wakes it again.

Log-probs. vLLM's V1 engine (the default since 0.8, the only one since 0.11) returns log-probs of the *raw* logits,
log_softmax in float32 before temperature, penalties and top-k/top-p ("Use the original logits (before any penalties
or temperature scaling) for the top-k logprobs. This is different from the V0 sampler", vllm/v1/sample/sampler.py).
Since 0.10.x (vllm-project/vllm#21398, mid-2025) this is the engine option `logprobs_mode="raw_logprobs"`, the
default, which we set explicitly. That is our convention: the temperature-1 policy log-prob of the sampled token
(`Rollout`). (TRL asks for "processed_logprobs" instead: its importance correction wants the sampling distribution.)
The V0 engine returned processed log-probs, so a V0 engine is refused. They are still another program's numbers:
vLLM's model runs in its own dtype (bfloat16 unless told), kernels and batch, so they differ from the trainer's
forward a little (order 1e-3..1e-2 nats a token in bfloat16). Trust them as `old_logp` only when that mismatch is
acceptable; otherwise recompute old log-probs with the trainer's model (`rlvr.models.logprobs`).

Weights. vLLM's model takes Hugging Face checkpoint names and fuses q/k/v and gate/up itself
(`model.load_weights(iterable of (name, tensor))`, what TRL's colocate mode calls). We reach the model through
`LLM.apply_model(fn)` (vllm-project/vllm#10353, late 2024), else the older attribute path
`llm.llm_engine.model_executor.driver_worker.model_runner.model`. Both need the engine in this process, so the
engine is built with VLLM_ENABLE_V1_MULTIPROCESSING=0 (V1 otherwise runs its core in a child process). Not used:
vLLM's newer weight-transfer API (`update_weights` with an IPC or NCCL backend) — it serves a trainer in another
process; here both live in one.

Sleep (`LLM(enable_sleep_mode=True)`, vLLM >= 0.8.3 for `wake_up(tags=...)`, vllm-project/vllm#15500): level 1 moves
the weights to CPU memory and drops the KV cache; level 2 drops both, so `load_weights` must run before the next
`generate` (enforced here: vLLM itself would sample from garbage, vllm-project/vllm#29341). `load_weights` during
sleep wakes the weights only (writing into unmapped memory crashes, TRL #5147); the KV cache comes back at `generate`.

Single GPU only (tensor_parallel_size 1): with more, the model lives in other processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from rlvr.rollout.text import FinishReason, budgets, completion_text, encode_prompts, eos_ids
from rlvr.rollout.types import Rollout, SamplingParams

INSTALL_HINT = "vLLM is not installed: pip install 'rlvr[vllm]' (needs a CUDA GPU)"
LOGPROBS_MODE = "raw_logprobs"  # log_softmax of the raw logits: temperature 1, before top-k/top-p


def sampling_kwargs(params: SamplingParams) -> dict[str, Any]:
    """Keyword arguments of `vllm.SamplingParams` for `params`, before the per-prompt budget and seed."""
    return {
        "n": params.n,
        "temperature": params.temperature,  # 0 is greedy in vLLM too
        "top_p": params.top_p,
        "top_k": params.top_k if params.top_k > 0 else -1,  # -1 is "off" in every vLLM (0 only in newer ones)
        "max_tokens": params.max_new_tokens,
        "stop": list(params.stop) or None,
        "include_stop_str_in_output": True,  # our stop strings stay in the completion
        "ignore_eos": params.ignore_eos,
        "seed": params.seed,
        "logprobs": 0,  # the sampled token's log-prob only
        "skip_special_tokens": False,  # stop strings match text with special tokens, as rlvr.rollout.text does
        "spaces_between_special_tokens": False,
    }


def request_kwargs(params: SamplingParams, max_tokens: Sequence[int]) -> list[dict[str, Any]]:
    """One `vllm.SamplingParams` keyword set per prompt: max_tokens capped by the prompt's budget, and a seed of its
    own. vLLM seeds sample j of a request with seed + j, so one shared seed would give two equal prompts of a batch
    equal completions; prompt i takes seed + i * n, and every sample of the batch has its own seed."""
    base = sampling_kwargs(params)
    return [
        {**base, "max_tokens": budget, "seed": None if params.seed is None else params.seed + i * params.n}
        for i, budget in enumerate(max_tokens)
    ]


def sampled_logprobs(entries: Sequence[Mapping[int, Any]] | None, token_ids: Sequence[int]) -> list[float]:
    """The log-prob of each sampled token, from vLLM's per-position {token_id: Logprob} maps."""
    if entries is None:
        raise ValueError("vLLM returned no log-probs: the request must set logprobs=0")
    if len(entries) != len(token_ids):
        raise ValueError(f"vLLM returned {len(entries)} log-prob entries for {len(token_ids)} tokens")
    return [float(entry[token].logprob) for entry, token in zip(entries, token_ids, strict=True)]


def finish_reason(reason: str | None) -> FinishReason:
    """vLLM's "stop" (eos or a stop string) and "length" are ours; "abort" or None means the request never finished."""
    if reason == "stop":
        return "stop"
    if reason == "length":
        return "length"
    raise RuntimeError(f"vLLM finished a completion with reason {reason!r} (aborted or unfinished)")


def to_rollouts(outputs: Sequence[Any], n: int, text_of: Callable[[list[int]], str]) -> list[Rollout]:
    """Rollouts from `vllm.LLM.generate`'s RequestOutputs (in prompt order), rollouts[i * n + j] = sample j of
    prompt i. `text_of` decodes completion ids (the shared rule in rlvr.rollout.text, not vLLM's own text)."""
    rollouts = []
    for i, request in enumerate(outputs):
        completions = sorted(request.outputs, key=lambda c: c.index)
        if [c.index for c in completions] != list(range(n)):
            raise RuntimeError(
                f"prompt {i}: vLLM returned samples {[c.index for c in completions]}, wanted {n}"
            )
        for completion in completions:
            ids = list(completion.token_ids)
            rollouts.append(
                Rollout(
                    prompt_index=i,
                    sample_index=completion.index,
                    prompt_ids=list(request.prompt_token_ids),
                    completion_ids=ids,
                    text=text_of(ids),
                    logprobs=sampled_logprobs(completion.logprobs, ids),
                    finish_reason=finish_reason(completion.finish_reason),
                )
            )
    return rollouts


class VLLMEngine:
    """A `RolloutEngine` on vLLM, colocated with the trainer on one GPU.

    model: any model spec `rlvr.models.registry.resolve` takes (a checkpoint directory, .gguf, registered name).
    gpu_memory_utilization: the fraction of the whole GPU vLLM takes for weights, activations and KV cache; the
        trainer gets the rest, so it must be free when the engine starts (TRL's colocate default is 0.3).
    engine_args: more `vllm.EngineArgs` (e.g. max_num_seqs), passed through.
    """

    def __init__(
        self,
        model: str | Path,
        *,
        gpu_memory_utilization: float = 0.3,
        dtype: str = "auto",  # "auto": the checkpoint's, but a float32 one runs in 16 bits (vLLM's rule)
        max_model_len: int | None = None,  # None: the model's max_position_embeddings
        enable_sleep_mode: bool = False,  # needed for sleep(); set at start-up, vLLM cannot switch it later
        seed: int = 0,  # the engine's seed, for requests without one
        enforce_eager: bool = False,  # True skips CUDA-graph capture: faster start, slower decode
        engine_args: Mapping[str, Any] | None = None,
    ) -> None:
        from rlvr.models.checkpoint import load_tokenizer
        from rlvr.models.registry import resolve

        vllm = _import_vllm()
        path = resolve(model)  # a registered name, .gguf or hub id becomes the directory vLLM reads
        self.tokenizer = load_tokenizer(path)  # the same files vLLM reads; we encode and decode with it
        self.enable_sleep_mode = enable_sleep_mode
        args: dict[str, Any] = {
            "model": str(path),
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "seed": seed,
            "enable_sleep_mode": enable_sleep_mode,
            "enforce_eager": enforce_eager,
            **(engine_args or {}),
        }
        if max_model_len is not None:
            args["max_model_len"] = max_model_len
        if args.get("tensor_parallel_size", 1) != 1:
            raise ValueError(
                "VLLMEngine runs on one GPU (tensor_parallel_size=1): it loads weights in-process"
            )
        if args.get("logprobs_mode", LOGPROBS_MODE) != LOGPROBS_MODE:
            raise ValueError(f"logprobs_mode must be {LOGPROBS_MODE!r}: rollouts carry policy log-probs")
        if _engine_takes(vllm, "logprobs_mode"):  # vLLM >= 0.10; before, V1's only mode was this one
            args["logprobs_mode"] = LOGPROBS_MODE
        # The engine core in this process, so load_weights reaches its model (read when the engine is built).
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
        self.llm = vllm.LLM(**args)
        self._vllm = vllm
        engine = type(self.llm.llm_engine)
        if not engine.__module__.startswith("vllm.v1"):
            raise RuntimeError(
                f"vLLM {vllm.__version__} runs its V0 engine ({engine.__module__}), whose log-probs are of the "
                "temperature-scaled, top-k/top-p-truncated distribution; rlvr needs V1 (VLLM_USE_V1=1, vLLM >= 0.8)"
            )
        self.context = int(self.llm.llm_engine.model_config.max_model_len)
        self.eos = eos_ids(SimpleNamespace(generation_config=_generation_config(path)), self.tokenizer)
        self._asleep: set[str] = set()  # the allocations vLLM has released: "weights", "kv_cache"
        self._weights_lost = False  # level-2 sleep discarded them; load_weights must come first

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        if self._weights_lost:
            raise RuntimeError(
                "the engine slept at level 2, which discards its weights: call load_weights first"
            )
        self._wake(self._asleep)
        prompt_ids = encode_prompts(self.tokenizer, prompts, self.context)
        per_prompt = [
            self._vllm.SamplingParams(**kwargs)
            for kwargs in request_kwargs(params, budgets(prompt_ids, params.max_new_tokens, self.context))
        ]
        outputs = self.llm.generate(
            [{"prompt_token_ids": ids} for ids in prompt_ids], per_prompt, use_tqdm=False
        )
        return to_rollouts(outputs, params.n, lambda ids: completion_text(self.tokenizer, ids, self.eos))

    def load_weights(self, named_parameters: Iterable[tuple[str, Any]]) -> None:
        """Copy the trainer's weights into vLLM's model: Hugging Face names (`model.named_parameters()` of the
        policy, unwrapped), any device and dtype (cast on copy). Cached prefixes computed with the old weights are
        dropped."""
        weights = [(name, tensor.detach()) for name, tensor in named_parameters]
        if not weights:
            raise ValueError("load_weights got no parameters")
        self._wake({"weights"} & self._asleep)
        results = _apply_to_model(self.llm, lambda model: model.load_weights(weights))
        if any(isinstance(loaded, set) and not loaded for loaded in results):
            raise ValueError(
                f"vLLM's model took none of the {len(weights)} tensors (first name {weights[0][0]!r}); names must be "
                "the Hugging Face checkpoint's, e.g. 'model.layers.0.self_attn.q_proj.weight'"
            )
        self._weights_lost = False
        self.llm.reset_prefix_cache()

    def sleep(self, level: int = 1) -> None:
        """Release vLLM's GPU memory: level 1 keeps the weights in CPU memory, level 2 drops them (then
        load_weights must run before generate; the cheaper choice when new weights come after every step)."""
        if not self.enable_sleep_mode:
            raise RuntimeError("sleep needs VLLMEngine(..., enable_sleep_mode=True)")
        if level not in (1, 2):
            raise ValueError(f"sleep level must be 1 or 2, got {level}")
        self._wake(self._asleep)  # vLLM sleeps from fully awake only
        self.llm.sleep(level=level)
        self._asleep = {"weights", "kv_cache"}
        self._weights_lost = self._weights_lost or level == 2

    def wake_up(self) -> None:
        """Take the GPU memory back (generate does this itself)."""
        self._wake(self._asleep)

    @property
    def is_sleeping(self) -> bool:
        return bool(self._asleep)

    def _wake(self, tags: set[str]) -> None:
        if not tags:
            return
        import torch

        torch.cuda.empty_cache()  # the trainer's cached blocks back to the driver, for vLLM to map
        if tags == self._asleep == {"weights", "kv_cache"}:
            self.llm.wake_up()  # every vLLM with sleep mode takes the plain call
        else:
            self.llm.wake_up(tags=sorted(tags))
        self._asleep -= tags
        if not self._asleep:
            self.llm.reset_prefix_cache()  # the KV cache's contents are gone


def _import_vllm() -> Any:
    try:
        import vllm
    except ImportError as e:
        raise ImportError(INSTALL_HINT) from e
    return vllm


def _engine_takes(vllm: Any, name: str) -> bool:
    """Whether this vLLM's EngineArgs has the field `name` (logprobs_mode arrived in 0.10.x)."""
    import dataclasses

    return name in {f.name for f in dataclasses.fields(vllm.EngineArgs)}


def _generation_config(path: Path) -> Any:
    """The checkpoint's generation_config.json (extra eos ids), or None when it has none."""
    if not (path / "generation_config.json").exists():
        return None
    from transformers import GenerationConfig

    return GenerationConfig.from_pretrained(path, local_files_only=True)


def _apply_to_model(llm: Any, fn: Callable[[Any], Any]) -> list[Any]:
    """fn(model) inside vLLM's worker, one result per worker (one here)."""
    if getattr(llm.llm_engine, "model_executor", None) is None:  # V1 sets it only for an in-process core
        raise RuntimeError(
            "vLLM runs its engine core in another process, so load_weights cannot reach the model; "
            "VLLMEngine sets VLLM_ENABLE_V1_MULTIPROCESSING=0 before building it — something overrode that"
        )
    if hasattr(llm, "apply_model"):
        return list(llm.apply_model(fn))
    try:
        model = llm.llm_engine.model_executor.driver_worker.model_runner.model
    except AttributeError as e:
        raise RuntimeError(
            "this vLLM has neither LLM.apply_model nor llm_engine.model_executor.driver_worker.model_runner.model; "
            "rlvr supports vLLM >= 0.8.3"
        ) from e
    return [fn(model)]
