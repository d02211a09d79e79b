"""Tiny builders, the tokenizer, and checkpoints that plain transformers loads back with identical logits."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from rlvr.data.templates import render
from rlvr.models.checkpoint import load_model, load_tokenizer, save_checkpoint
from rlvr.models.logprobs import token_logprobs
from rlvr.models.tiny import ARCHS, build_tiny_model
from rlvr.models.tokenizer import build_tiny_tokenizer
from rlvr.rollout import local_engine
from rlvr.rollout.hf import HFEngine
from rlvr.rollout.types import SamplingParams


@pytest.mark.parametrize("arch", ARCHS)
def test_saved_checkpoint_loads_back_with_plain_transformers(arch: str, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model, tokenizer = build_tiny_model(arch, seed=3), build_tiny_tokenizer()
    path = save_checkpoint(model, tokenizer, tmp_path / "ckpt")
    assert (path / "config.json").exists() and (path / "model.safetensors").exists()
    reloaded = AutoModelForCausalLM.from_pretrained(path)
    ids = torch.randint(0, len(tokenizer), (3, 17))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)
    assert AutoTokenizer.from_pretrained(path).chat_template == tokenizer.chat_template
    ours = load_model(path, dtype="float32", gradient_checkpointing=True)
    assert ours.config.model_type == arch and not ours.config.use_cache
    assert getattr(ours, "is_activation_checkpointing", None) or ours.is_gradient_checkpointing


def test_saving_over_a_checkpoint_replaces_it_whole(tmp_path: Path) -> None:
    save_checkpoint(build_tiny_model(seed=1), build_tiny_tokenizer(), tmp_path / "ckpt")
    (tmp_path / "ckpt" / "stale.txt").write_text("from the old checkpoint")
    save_checkpoint(build_tiny_model(seed=2), build_tiny_tokenizer(), tmp_path / "ckpt")
    assert not (tmp_path / "ckpt" / "stale.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temporary directories left


def test_tokenizer_round_trips_and_keeps_r1_tokens_whole() -> None:
    tok = build_tiny_tokenizer()
    text = "<think>2 + 3 = 5\n</think> <answer>5</answer>"
    ids = tok(text)["input_ids"]
    assert tok.decode(ids) == text
    assert ids[0] == tok.convert_tokens_to_ids("<think>")
    assert tok.decode(ids, skip_special_tokens=True) == "2 + 3 = 5\n 5"
    prompt = render("qwen_math", "What is 2+3?", tok)
    assert prompt.startswith("<|im_start|>system\nPlease reason step by step") and prompt.endswith(
        "<|im_start|>assistant\n"
    )


def test_missing_checkpoint_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such checkpoint directory"):
        load_model(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"missing config\.json"):
        load_model(tmp_path / "empty")
    path = save_checkpoint(build_tiny_model(), build_tiny_tokenizer(), tmp_path / "ckpt")
    (path / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"no weights \(\*\.safetensors"):
        load_model(path)


def test_a_model_type_no_engine_knows_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from rlvr.cli import main

    (tmp_path / "config.json").write_text('{"model_type": "foo", "architectures": ["FooForCausalLM"]}')
    (tmp_path / "model.safetensors").write_bytes(b"")
    for load in (load_model, load_tokenizer):
        with pytest.raises(
            ValueError, match=r"config.json: model_type 'foo' is not a causal LM that transformers"
        ):
            load(tmp_path)
    out = tmp_path / "eval"
    assert main(["eval", str(tmp_path), "--benchmarks", "words_test", "--limit", "1", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "model_type 'foo' is not a causal LM" in err and not out.exists()


def test_other_causal_lm_loads_and_samples_through_hf(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A GPT-2 (no family the fast engine knows): it loads, engine fast hands it to the hf engine with a one-line
    notice, and the trainer's log-probs of what it sampled are its forward's."""
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = build_tiny_tokenizer()
    torch.manual_seed(0)
    eos = tokenizer.eos_token_id
    config = GPT2Config(
        vocab_size=len(tokenizer),
        n_embd=64,
        n_layer=2,
        n_head=4,
        n_positions=256,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    path = save_checkpoint(GPT2LMHeadModel(config).eval(), tokenizer, tmp_path / "gpt2")
    model = load_model(path, dtype="float32").eval()
    assert model.config.model_type == "gpt2"
    monkeypatch.setattr("rlvr.rollout._noticed", set())  # notices given earlier in this process
    with caplog.at_level("WARNING", logger="rlvr.rollout"):
        engine = local_engine("fast", model, load_tokenizer(path))
    assert isinstance(engine, HFEngine)
    assert [r.getMessage() for r in caplog.records if r.name == "rlvr.rollout"] == [
        "engine fast: the fast engine knows llama, qwen2, mistral, qwen3, gemma2, gemma3_text, phi3, olmo2 "
        "decoders, not 'gpt2'; sampling with the hf engine (model.generate) instead"
    ]
    params = SamplingParams(n=2, temperature=1.0, max_new_tokens=12, seed=0, ignore_eos=True)
    rollouts = engine.generate(["What is 2+3?", "hi"], params)
    assert [len(r.completion_ids) for r in rollouts] == [12] * 4
    for r in rollouts:
        ids = torch.tensor([r.prompt_ids + r.completion_ids])
        with torch.no_grad():
            logp = token_logprobs(model, ids).logp[0, len(r.prompt_ids) :]
        assert logp.tolist() == pytest.approx(r.logprobs, abs=1e-4)


def test_tokenizer_without_chat_template_is_refused_where_required(tmp_path: Path) -> None:
    tok = build_tiny_tokenizer()
    tok.chat_template = None
    path = save_checkpoint(build_tiny_model(), tok, tmp_path / "ckpt")
    assert load_tokenizer(path).chat_template is None
    with pytest.raises(ValueError, match="no chat template"):
        load_tokenizer(path, require_chat_template=True)
    with pytest.raises(ValueError, match="this tokenizer has none"):
        render("deepscaler", "Q?", load_tokenizer(path))
