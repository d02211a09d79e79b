"""SFT: examples and masks, packed = padded loss, schedule, exact resume after a kill, 2 processes = 1 process."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlvr.config import load_config
from rlvr.models.logprobs import LogprobModel
from rlvr.models.tiny import build_tiny_pair
from rlvr.train.examples import Example, encode, global_batch, load_examples
from rlvr.train.metrics import read_metrics
from rlvr.train.optim import lr_at
from rlvr.train.sft import SFTConfig, micro_batch_loss

ROOT = Path(__file__).resolve().parents[1]


def write_data(path: Path, count: int, seed: int = 0) -> Path:
    """Problems with worked solutions (two-number sums), as a problem file."""
    import random

    rng = random.Random(seed)
    with path.open("w") as f:
        for i in range(count):
            a, b = rng.randrange(100), rng.randrange(100)
            solution = f"<think>{a}+{b}</think><answer>{a + b}</answer>"
            f.write(
                json.dumps({"id": str(i), "problem": f"{a}+{b}", "answer": str(a + b), "solution": solution})
            )
            f.write("\n")
    return path


@pytest.fixture(scope="module")
def pair():
    return build_tiny_pair(seed=0)


def test_chat_target_is_the_assistant_turn_up_to_end_of_turn(pair):
    _, tok = pair
    ex = encode(tok, {"problem": "2+3", "solution": "<answer>5</answer>"}, "plain", "x")
    prompt = tok.decode(ex.ids[: ex.prompt_len], skip_special_tokens=False)
    target = tok.decode(ex.ids[ex.prompt_len :], skip_special_tokens=False)
    assert prompt == "<|im_start|>user\n2+3<|im_end|>\n<|im_start|>assistant\n"
    assert target == "<answer>5</answer><|im_end|>"  # the template's trailing newline is not a target


def test_messages_and_raw_template_examples(pair):
    _, tok = pair
    chat = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
    ex = encode(tok, chat, "plain", "x")
    assert tok.decode(ex.ids[ex.prompt_len :], skip_special_tokens=False) == "yo<|im_end|>"
    raw = encode(tok, {"problem": "1+1", "response": "<answer>2</answer>"}, "r1_zero", "x")
    assert (
        tok.decode(raw.ids[raw.prompt_len :], skip_special_tokens=False) == " <answer>2</answer><|endoftext|>"
    )
    with pytest.raises(ValueError, match=r"data\.jsonl: record 3"):
        encode(tok, {"problem": "1+1"}, "plain", "data.jsonl: record 3")


def test_long_examples_are_cut_and_prompt_only_ones_dropped(tmp_path, pair):
    _, tok = pair
    data = write_data(tmp_path / "d.jsonl", 5)
    full, _ = load_examples(str(data), tok, "plain", 10_000)
    cut, dropped = load_examples(str(data), tok, "plain", full[0].prompt_len + 3)
    assert dropped == 0 and all(len(e.ids) <= full[0].prompt_len + 3 for e in cut)
    with pytest.raises(ValueError, match="no usable examples"):
        load_examples(str(data), tok, "plain", 5)


def test_packed_and_padded_batches_give_the_same_loss(tmp_path, pair):
    lm, tok = pair
    model = LogprobModel(lm)
    examples, _ = load_examples(str(write_data(tmp_path / "d.jsonl", 6)), tok, "plain", 256)
    tokens = sum(e.target_tokens for e in examples)
    losses = {}
    for pack in (True, False):
        config = SFTConfig(pack=pack)
        model.zero_grad()
        loss, n = micro_batch_loss(model, examples, tokens, config, torch.device("cpu"), tok.pad_token_id)
        loss.backward()
        losses[pack] = (float(loss.detach()), n, lm.model.layers[0].mlp.up_proj.weight.grad.clone())
    assert losses[True][1] == losses[False][1] == tokens
    assert losses[True][0] == pytest.approx(losses[False][0], rel=1e-5)
    assert torch.allclose(losses[True][2], losses[False][2], atol=1e-6)
    # a contaminated pack (no block mask) would differ: check the padded loss is not trivially insensitive
    shifted = [Example(e.ids[1:], e.prompt_len - 1) for e in examples]
    other, _ = micro_batch_loss(model, shifted, tokens, SFTConfig(), torch.device("cpu"), tok.pad_token_id)
    assert float(other.detach()) != pytest.approx(losses[True][0], rel=1e-3)


def test_schedule_values():
    kw = {"lr": 1.0, "total": 10, "warmup": 2, "min_lr_ratio": 0.1}
    assert [lr_at(s, schedule="cosine", **kw) for s in (0, 1, 2)] == [0.5, 1.0, 1.0]
    assert lr_at(6, schedule="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the decay
    assert lr_at(10, schedule="cosine", **kw) == pytest.approx(0.1)
    assert lr_at(6, schedule="linear", **kw) == pytest.approx(0.55)
    assert lr_at(9, schedule="constant", **kw) == 1.0


def test_global_batches_roll_over_epochs_deterministically():
    first = global_batch(5, seed=1, consumed=0, batch_size=5)
    assert sorted(first) == list(range(5))
    wrapped = global_batch(5, seed=1, consumed=3, batch_size=4)
    assert wrapped[:2] == first[3:] and len(set(wrapped[2:])) == 2
    assert global_batch(5, seed=2, consumed=0, batch_size=5) != first


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ValueError, match="unknown key 'lrr'"):
        load_config(SFTConfig, None, ["lrr=1"])
    with pytest.raises(ValueError, match=r"config\.micro_batch_size: expected int"):
        load_config(SFTConfig, None, ["micro_batch_size=big"])
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: 3e-4\ntiny:\n  hidden_size: 32\n")
    config = load_config(SFTConfig, recipe, ["tiny.num_layers=1", "eval_data=null"])
    assert (config.lr, config.tiny.hidden_size, config.tiny.num_layers, config.eval_data) == (
        3e-4,
        32,
        1,
        None,
    )
    recipe.write_text("schedule: wavy\n")
    with pytest.raises(ValueError, match="'wavy' is not one of cosine, linear, constant"):
        load_config(SFTConfig, recipe)


def sft_args(data: Path, out: Path, *extra: str) -> list[str]:
    return [
        f"data={data}", "eval_data=null", f"out_dir={out}", "batch_size=8", "micro_batch_size=3",
        "lr=3e-3", "warmup_steps=2", "max_length=64", "checkpoint_optimizer=float32", *extra,
    ]  # fmt: skip


def run_cli(args: list[str], nproc: int = 1) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "rlvr", "sft", *args, "--no-progress"]
    else:
        cmd = [
            sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(nproc),
            "--master_port", "29533", "-m", "rlvr", "sft", *args, "--no-progress",
        ]  # fmt: skip
    return subprocess.Popen(
        cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finish(proc: subprocess.Popen) -> None:
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out


def losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["train/loss"] for r in read_metrics(run / "metrics.jsonl") if "train/loss" in r}


def test_killed_and_resumed_run_continues_exactly(tmp_path):
    data = write_data(tmp_path / "d.jsonl", 40)
    steps = 40
    straight = run_cli(sft_args(data, tmp_path / "a", f"max_steps={steps}"))
    killed = run_cli(sft_args(data, tmp_path / "b", f"max_steps={steps}", "save_every=5"))
    metrics = tmp_path / "b" / "metrics.jsonl"
    deadline = time.time() + 240
    while time.time() < deadline and killed.poll() is None:  # kill it between checkpoints, past step 12
        done = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        if done >= 12 and done % 5 in (2, 3):
            break
        time.sleep(0.01)
    assert killed.poll() is None, "the run ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    finish(straight)
    cut = len(metrics.read_text().splitlines())
    assert not (tmp_path / "b" / "final").exists() and cut < steps
    finish(run_cli([*sft_args(data, tmp_path / "b", f"max_steps={steps}", "save_every=5"), "--resume"]))
    a, b = losses(tmp_path / "a"), losses(tmp_path / "b")
    assert sorted(b) == list(range(1, steps + 1))  # steps after the last checkpoint were dropped, then redone
    assert b == a  # bit-identical: same data order, optimizer state, RNG
    assert a[steps] < a[1]


def test_two_processes_match_one(tmp_path):
    data = write_data(tmp_path / "d.jsonl", 40)
    one = run_cli(sft_args(data, tmp_path / "one", "max_steps=6"))
    finish(one)
    finish(run_cli(sft_args(data, tmp_path / "two", "max_steps=6"), nproc=2))
    finish(run_cli(sft_args(data, tmp_path / "fsdp", "max_steps=6", "sharding=fsdp"), nproc=2))
    from safetensors.torch import load_file

    a = losses(tmp_path / "one")
    assert not math.isclose(
        a[1], a[6], rel_tol=1e-3
    )  # training moved the loss: the comparison means something
    wa = load_file(tmp_path / "one" / "final" / "model.safetensors")
    for run in ("two", "fsdp"):  # data parallel, then sharded: the same steps
        b = losses(tmp_path / run)
        assert sorted(a) == sorted(b) == list(range(1, 7))
        for step in a:
            assert b[step] == pytest.approx(a[step], rel=1e-4), (run, step)
        wb = load_file(tmp_path / run / "final" / "model.safetensors")
        assert wa.keys() == wb.keys()
        assert all(torch.allclose(wa[k], wb[k], atol=1e-5) for k in wa), run


def test_refuses_to_overwrite_a_run(tmp_path):
    data = write_data(tmp_path / "d.jsonl", 8)
    finish(run_cli(sft_args(data, tmp_path / "r", "max_steps=1")))
    proc = run_cli(sft_args(data, tmp_path / "r", "max_steps=1"))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2 and "already holds checkpoints: pass --resume" in out


def test_resume_at_the_last_step_reports_its_figures(tmp_path, capsys):
    """Killed after the last checkpoint (while writing final/): the resumed run has no step left to run, and still
    ends with exit 0 and the last step's figures (it used to raise KeyError: 'train/loss'; bench/chaos.py)."""
    from rlvr import cli

    data = write_data(tmp_path / "d.jsonl", 8)
    args = ["sft", *sft_args(data, tmp_path / "r", "max_steps=2", "save_every=1"), "--json"]
    assert cli.main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert cli.main([*args, "--resume"]) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["steps"] == 2 and again["train/loss"] == first["train/loss"]
    assert cli.main([*args[:-1], "--resume"]) == 0  # the plain report prints the train loss
    assert f"train loss {first['train/loss']:.4f}" in capsys.readouterr().out
    assert [r["step"] for r in read_metrics(tmp_path / "r" / "metrics.jsonl")] == [1, 2]
