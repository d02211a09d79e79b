"""The vLLM adapter on CPU without vLLM: our SamplingParams to vLLM's keyword arguments, vLLM's
RequestOutput/CompletionOutput (faked with the same attributes) to Rollouts, and VLLMEngine's bookkeeping — engine
arguments, weight pushes, the sleep/wake sequence — against a fake `vllm` module that records the calls it gets.
The real engine on a GPU: tests/test_vllm.py."""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import os
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from rlvr.models.tokenizer import build_tiny_tokenizer
from rlvr.rollout.types import SamplingParams
from rlvr.rollout.vllm import (
    VLLMEngine,
    finish_reason,
    request_kwargs,
    sampled_logprobs,
    sampling_kwargs,
    to_rollouts,
)


def logprob(value: float) -> SimpleNamespace:  # vllm.sequence.Logprob: logprob, rank, decoded_token
    return SimpleNamespace(logprob=value, rank=1, decoded_token=None)


def completion(index: int, ids: list[int], lps: list[float], reason: str | None = "stop") -> SimpleNamespace:
    # logprobs=0 gives one {sampled id: Logprob} map per position (vLLM may add the top-k; only ours is read)
    entries = [{t: logprob(v), 999: logprob(-9.0)} for t, v in zip(ids, lps, strict=True)]
    return SimpleNamespace(
        index=index, token_ids=tuple(ids), text="vLLM's text", logprobs=entries, finish_reason=reason
    )


def request(prompt_ids: list[int], *completions: SimpleNamespace) -> SimpleNamespace:
    return SimpleNamespace(prompt_token_ids=prompt_ids, outputs=list(completions))


def test_sampling_kwargs_defaults_ask_for_policy_logprobs_and_keep_stop_strings() -> None:
    kwargs = sampling_kwargs(SamplingParams())
    assert kwargs == {
        "n": 1,
        "temperature": 1.0,
        "top_p": 1.0,
        "top_k": -1,
        "max_tokens": 256,
        "stop": None,
        "include_stop_str_in_output": True,
        "ignore_eos": False,
        "seed": None,
        "logprobs": 0,
        "skip_special_tokens": False,
        "spaces_between_special_tokens": False,
    }


def test_sampling_kwargs_carry_every_field() -> None:
    params = SamplingParams(
        n=4, temperature=0.0, top_p=0.9, top_k=20, max_new_tokens=7, stop=("</answer>", "\n\n"), seed=3
    )
    kwargs = sampling_kwargs(params)
    assert (kwargs["n"], kwargs["temperature"], kwargs["top_p"], kwargs["top_k"]) == (4, 0.0, 0.9, 20)
    assert (kwargs["max_tokens"], kwargs["stop"], kwargs["seed"]) == (7, ["</answer>", "\n\n"], 3)
    assert sampling_kwargs(SamplingParams(ignore_eos=True))["ignore_eos"] is True


def test_each_prompt_gets_its_budget_and_its_own_seeds() -> None:
    # vLLM seeds sample j of a request with seed + j: prompt i starts at seed + i * n, so no two samples share one
    requests = request_kwargs(SamplingParams(n=3, seed=10, max_new_tokens=8), [8, 5])
    assert [(r["max_tokens"], r["seed"]) for r in requests] == [(8, 10), (5, 13)]
    assert all(r["n"] == 3 and r["logprobs"] == 0 for r in requests)
    unseeded = request_kwargs(SamplingParams(n=2), [4, 4, 4])
    assert [r["seed"] for r in unseeded] == [None, None, None]


def test_outputs_become_rollouts_grouped_by_prompt() -> None:
    outputs = [
        # samples out of order: vLLM's order within a request is not promised, their index is
        request([5, 6], completion(1, [9, 1], [-0.5, -0.25]), completion(0, [8], [-1.0], "length")),
        request([7], completion(0, [3, 4, 1], [-0.1, -0.2, -0.3]), completion(1, [2], [-2.0], "length")),
    ]
    rollouts = to_rollouts(outputs, 2, lambda ids: "/".join(map(str, ids)))
    assert [(r.prompt_index, r.sample_index) for r in rollouts] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    first, second = rollouts[0], rollouts[1]
    assert first.prompt_ids == [5, 6] and first.completion_ids == [8] and first.finish_reason == "length"
    assert (
        second.completion_ids == [9, 1]
        and second.logprobs == [-0.5, -0.25]
        and second.finish_reason == "stop"
    )
    assert second.text == "9/1"  # our decoding, not vLLM's text
    assert rollouts[2].logprobs == [-0.1, -0.2, -0.3] and rollouts[2].prompt_ids == [7]
    first.prompt_ids.append(0)  # each rollout owns its lists
    assert second.prompt_ids == [5, 6] and outputs[0].prompt_token_ids == [5, 6]


def test_sampled_logprobs_read_the_sampled_token_of_each_position() -> None:
    entries = [{4: logprob(-0.7), 2: logprob(-0.1)}, {2: logprob(-math.inf)}]
    assert sampled_logprobs(entries, [4, 2]) == [-0.7, -math.inf]
    with pytest.raises(ValueError, match="logprobs=0"):
        sampled_logprobs(None, [4])
    with pytest.raises(ValueError, match="1 log-prob entries for 2 tokens"):
        sampled_logprobs(entries[:1], [4, 2])


def test_unfinished_or_missing_samples_are_errors() -> None:
    assert finish_reason("stop") == "stop" and finish_reason("length") == "length"
    for reason in ("abort", None):
        with pytest.raises(RuntimeError, match="aborted or unfinished"):
            finish_reason(reason)
    with pytest.raises(RuntimeError, match=r"returned samples \[0\], wanted 2"):
        to_rollouts([request([1], completion(0, [2], [-1.0]))], 2, str)


def test_empty_batch_gives_no_rollouts() -> None:
    assert to_rollouts([], 3, str) == []


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed")
def test_engine_without_vllm_says_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(ImportError, match=r"pip install 'rlvr\[vllm\]'"):
        VLLMEngine(tmp_path)


def test_importing_the_adapter_does_not_import_vllm() -> None:
    if "vllm" in sys.modules:
        pytest.skip("vllm already imported by another test")
    import rlvr.rollout.vllm  # noqa: F401

    assert "vllm" not in sys.modules


# ---- VLLMEngine against a fake vllm module ----


class FakeLLM:
    """vllm.LLM's surface that VLLMEngine touches. Completions: sample j of a prompt is [prompt's last id + j, eos]."""

    engine_module = "vllm.v1.engine.llm_engine"
    has_apply_model = True

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.env_multiprocessing = os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
        self.calls: list[tuple[Any, ...]] = []
        self.model = SimpleNamespace(load_weights=self._load_weights, loaded=[])
        engine_cls = type("LLMEngine", (), {"__module__": self.engine_module})
        self.llm_engine = engine_cls()
        self.llm_engine.model_config = SimpleNamespace(max_model_len=kwargs.get("max_model_len", 64))
        self.llm_engine.model_executor = SimpleNamespace(
            driver_worker=SimpleNamespace(model_runner=SimpleNamespace(model=self.model))
        )

    def __getattr__(self, name: str) -> Any:
        if name == "apply_model" and type(self).has_apply_model:
            return lambda fn: [fn(self.model)]
        raise AttributeError(name)

    def _load_weights(self, weights: list[tuple[str, Any]]) -> set[str]:
        self.model.loaded.append(weights)
        return {name for name, _ in weights if name.startswith("model.")}

    def generate(self, prompts: list[dict[str, list[int]]], params: list[Any], use_tqdm: bool) -> list[Any]:
        self.calls.append(("generate", [p["prompt_token_ids"] for p in prompts], params))
        outputs = []
        for prompt, p in zip(prompts, params, strict=True):
            ids = prompt["prompt_token_ids"]
            samples = [completion(j, [ids[-1] + j, 1], [-0.5, -0.1]) for j in range(p.n)]
            outputs.append(request(ids, *samples))
        return outputs

    def sleep(self, level: int) -> None:
        self.calls.append(("sleep", level))

    def wake_up(self, tags: list[str] | None = None) -> None:
        self.calls.append(("wake_up", tags))

    def reset_prefix_cache(self) -> None:
        self.calls.append(("reset_prefix_cache",))


@dataclasses.dataclass
class EngineArgs:
    model: str = ""
    logprobs_mode: str = "raw_logprobs"


@dataclasses.dataclass
class OldEngineArgs:  # vLLM before 0.10: no logprobs_mode
    model: str = ""


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    module = SimpleNamespace(
        __version__="0.0.fake",
        LLM=FakeLLM,
        SamplingParams=lambda **kw: SimpleNamespace(**kw),
        EngineArgs=EngineArgs,
    )
    monkeypatch.setitem(sys.modules, "vllm", module)
    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "1")  # the engine must override it (restored after)
    build_tiny_tokenizer().save_pretrained(tmp_path / "ckpt")
    return module, tmp_path / "ckpt"


def calls(engine: VLLMEngine) -> list[tuple[Any, ...]]:
    llm = engine.llm
    out, llm.calls = llm.calls, []
    return [c for c in out if c[0] != "generate"]


def test_engine_asks_for_raw_logprobs_in_process(fake_vllm: Any) -> None:
    module, path = fake_vllm
    engine = VLLMEngine(path, gpu_memory_utilization=0.25, max_model_len=32, engine_args={"max_num_seqs": 8})
    kwargs = engine.llm.kwargs
    assert kwargs["model"] == str(path) and kwargs["gpu_memory_utilization"] == 0.25
    assert kwargs["logprobs_mode"] == "raw_logprobs" and kwargs["max_num_seqs"] == 8
    assert kwargs["max_model_len"] == 32 and engine.context == 32
    assert engine.llm.env_multiprocessing == "0"
    assert engine.eos == (1,)  # the tiny tokenizer's <|endoftext|>; no generation_config.json
    with pytest.raises(ValueError, match="logprobs_mode must be 'raw_logprobs'"):
        VLLMEngine(path, engine_args={"logprobs_mode": "processed_logprobs"})
    with pytest.raises(ValueError, match="one GPU"):
        VLLMEngine(path, engine_args={"tensor_parallel_size": 2})
    module.EngineArgs = OldEngineArgs
    assert "logprobs_mode" not in VLLMEngine(path).llm.kwargs


def test_engine_refuses_vllms_v0_engine(fake_vllm: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(FakeLLM, "engine_module", "vllm.engine.llm_engine")
    with pytest.raises(RuntimeError, match="V0 engine"):
        VLLMEngine(fake_vllm[1])


def test_generate_encodes_budgets_and_decodes_like_the_other_engines(fake_vllm: Any) -> None:
    engine = VLLMEngine(fake_vllm[1], max_model_len=8)
    tokenizer = engine.tokenizer
    rollouts = engine.generate(["ab", "<think>xyz"], SamplingParams(n=2, max_new_tokens=5, seed=7))
    _, prompt_ids, params = engine.llm.calls[-1]
    assert prompt_ids == [
        tokenizer("ab", add_special_tokens=False)["input_ids"],
        tokenizer.encode("<think>xyz"),
    ]
    assert [p.max_tokens for p in params] == [5, 4]  # 8 positions less the 4-token prompt
    assert [p.seed for p in params] == [7, 9]
    assert [(r.prompt_index, r.sample_index) for r in rollouts] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert rollouts[1].completion_ids == [tokenizer.convert_tokens_to_ids("b") + 1, 1]
    assert rollouts[1].text == "c"  # eos dropped from the text
    assert rollouts[1].logprobs == [-0.5, -0.1] and rollouts[1].finish_reason == "stop"


def test_load_weights_reaches_the_model_and_drops_cached_prefixes(fake_vllm: Any) -> None:
    engine = VLLMEngine(fake_vllm[1])
    engine.load_weights(iter([("model.norm.weight", FakeTensor(1)), ("lm_head.weight", FakeTensor(2))]))
    assert [name for name, _ in engine.llm.model.loaded[-1]] == ["model.norm.weight", "lm_head.weight"]
    assert engine.llm.model.loaded[-1][0][1].detached
    assert calls(engine) == [("reset_prefix_cache",)]
    with pytest.raises(
        ValueError, match=r"took none of the 1 tensors \(first name 'module.model.norm.weight'\)"
    ):
        engine.load_weights([("module.model.norm.weight", FakeTensor(1))])
    with pytest.raises(ValueError, match="no parameters"):
        engine.load_weights([])


def test_load_weights_without_apply_model_uses_the_attribute_path(
    fake_vllm: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(FakeLLM, "has_apply_model", False)
    engine = VLLMEngine(fake_vllm[1])
    engine.load_weights([("model.norm.weight", FakeTensor(1))])
    assert len(engine.llm.model.loaded) == 1
    engine.llm.llm_engine.model_executor = None  # a V1 core in another process
    with pytest.raises(RuntimeError, match="another process"):
        engine.load_weights([("model.norm.weight", FakeTensor(1))])


def test_sleep_and_wake_sequence(fake_vllm: Any) -> None:
    engine = VLLMEngine(fake_vllm[1], enable_sleep_mode=True)
    prompts, params = ["ab"], SamplingParams(max_new_tokens=4)
    engine.sleep(level=1)
    assert engine.is_sleeping and calls(engine) == [("sleep", 1)]
    engine.generate(prompts, params)  # wakes everything first, with the call every vLLM takes
    assert not engine.is_sleeping and calls(engine) == [("wake_up", None), ("reset_prefix_cache",)]

    engine.sleep(level=2)
    with pytest.raises(RuntimeError, match="load_weights first"):
        engine.generate(prompts, params)
    calls(engine)
    engine.load_weights([("model.norm.weight", FakeTensor(1))])  # the weights wake, the KV cache stays freed
    assert engine.is_sleeping and calls(engine) == [("wake_up", ["weights"]), ("reset_prefix_cache",)]
    engine.generate(prompts, params)
    assert calls(engine) == [("wake_up", ["kv_cache"]), ("reset_prefix_cache",)]

    engine.sleep(level=1)
    engine.load_weights([("model.norm.weight", FakeTensor(1))])
    calls(engine)
    engine.sleep(level=2)  # from half awake: wake the rest first, vLLM sleeps from fully awake only
    assert calls(engine) == [("wake_up", ["kv_cache"]), ("reset_prefix_cache",), ("sleep", 2)]
    engine.wake_up()
    assert calls(engine) == [("wake_up", None), ("reset_prefix_cache",)]
    with pytest.raises(RuntimeError, match="load_weights first"):  # awake, but the weights are still gone
        engine.generate(prompts, params)
    with pytest.raises(ValueError, match="1 or 2"):
        engine.sleep(level=3)


def test_sleep_needs_sleep_mode(fake_vllm: Any) -> None:
    with pytest.raises(RuntimeError, match="enable_sleep_mode=True"):
        VLLMEngine(fake_vllm[1]).sleep()


class FakeTensor:
    def __init__(self, value: int, detached: bool = False) -> None:
        self.value, self.detached = value, detached

    def detach(self) -> FakeTensor:
        return FakeTensor(self.value, detached=True)
