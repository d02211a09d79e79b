"""Training a real pretrained model: SmolLM2-135M-Instruct by its registered name, its own chat template, one GRPO
step in bf16 compute over fp32 masters, and an SFT checkpoint that plain transformers reloads to the same logits.
Skipped unless the model is fetched (`.ci/run` fetches it; see the `smollm2` fixture in conftest.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from rlvr.config import load_config
from rlvr.data.templates import Template, render, response
from rlvr.models import registry
from rlvr.models.checkpoint import load_model, load_tokenizer
from rlvr.rewards.functions import REWARDS
from rlvr.train import distributed, sft
from rlvr.train.rl import Trainer
from rlvr.train.rl_config import RLConfig
from rlvr.train.sft import SFTConfig

pytestmark = pytest.mark.real
PROBLEM = "Mia has 6 shells. Mia finds 4 more shells. How many shells does Mia have now?"


def test_loads_by_name_with_its_own_chat_template(smollm2: Path) -> None:
    fetched = registry.local_checkpoint(registry.lookup("smollm2-135m-instruct")) is not None
    name = "smollm2-135m-instruct" if fetched else smollm2  # by name wherever it was fetched (CI)
    model, tokenizer = load_model(name), load_tokenizer(name)
    assert model.config.model_type == "llama" and model.num_parameters() == 134_515_008
    assert all(p.dtype == torch.float32 for p in model.parameters())
    plain = render("plain", PROBLEM, tokenizer)  # SmolLM2's template adds its own system prompt
    assert plain == (
        "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
        f"<|im_start|>user\n{PROBLEM}<|im_end|>\n<|im_start|>assistant\n"
    )
    inline = Template(system="Think first.", user="Q: {problem}", prefix="<think>\n")
    text = render(inline, PROBLEM, tokenizer)
    assert text == (
        f"<|im_start|>system\nThink first.<|im_end|>\n<|im_start|>user\nQ: {PROBLEM}<|im_end|>\n"
        "<|im_start|>assistant\n<think>\n"
    )
    assert response(inline, "10</think> The answer is 10.") == "<think>\n10</think> The answer is 10."


def _length(response: str, gold: str, final_form: bool = False) -> float:
    return float(len(response))  # responses of a group differ in length (a tie with the mean is possible)


def test_one_grpo_step_in_bf16_compute_moves_the_fp32_masters(
    smollm2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = {k: v.clone() for k, v in load_model(smollm2).state_dict().items()}
    args = [
        f"model={smollm2}", "data=words", "eval_data=null", f"out_dir={tmp_path / 'rl'}", "template=plain",
        "prompts_per_step=2", "stages=[{steps: 1, max_new_tokens: 24, n: 4}]", "micro_batch_size=8",
        "reward=length", "dtype=bfloat16", "rollout_dtype=bfloat16", "lr=1e-6", "sample_every=0",
        "skip_idle_rows=false",  # a response as long as its group's mean has advantage 0: it still runs
    ]  # fmt: skip
    monkeypatch.setitem(REWARDS, "length", _length)
    trainer = Trainer(
        load_config(RLConfig, None, args), distributed.init("cpu"), resume=False, progress=False
    )
    figures = trainer.train()
    assert figures["train/rows_idle"] == 0.0 and figures["train/lr"] == 1e-6
    after = trainer.model.state_dict()
    assert all(v.dtype == torch.float32 for v in after.values())
    # bf16 parameters would keep most weights as they were at lr 1e-6 (tests/test_precision.py); fp32 masters under
    # bf16 compute move every weight of every layer (the embedding's rows of unseen tokens have no gradient)
    layers = [k for k in after if ".layers." in k]
    moved = sum(int((after[k] != before[k]).sum()) for k in layers) / sum(after[k].numel() for k in layers)
    assert moved > 0.99, moved


def test_sft_checkpoint_reloads_in_plain_transformers_to_the_same_logits(
    smollm2: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "sft"
    args = [
        f"model={smollm2}", "data=words", "eval_data=null", f"out_dir={out}", "max_steps=1", "batch_size=2",
        "micro_batch_size=2", "lr=1e-5", "dtype=bfloat16", "max_length=256",
    ]  # fmt: skip
    sft.run(load_config(SFTConfig, None, args), progress=False)
    final = out / "final"
    config = json.loads((final / "tokenizer_config.json").read_text())
    assert "local_files_only" not in config and "quantization_config" not in json.loads(
        (final / "config.json").read_text()
    )
    plain = AutoModelForCausalLM.from_pretrained(final, dtype=torch.float32).eval()
    ours = load_model(final).eval()
    base = load_model(smollm2).eval()
    tokenizer = AutoTokenizer.from_pretrained(final)
    text = render("plain", PROBLEM, load_tokenizer(final))
    ids = tokenizer(text, return_tensors="pt").input_ids
    assert ids.tolist() == load_tokenizer(smollm2)(text, return_tensors="pt").input_ids.tolist()
    with torch.no_grad():
        logits = plain(ids).logits
        assert torch.equal(logits, ours(ids).logits)
        assert not torch.equal(logits, base(ids).logits)  # it did train
