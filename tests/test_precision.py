"""Training precision (`rlvr.train.precision`): bf16 compute over fp32 master weights learns at a small lr as fp32
does, bf16 parameters do not (and say so), autocast acts on CPU, the configs check the keys, and the stored old
log-probs under bf16 give a PPO ratio of exactly 1 before the first optimizer step."""

from __future__ import annotations

import warnings
from typing import Any

import pytest
import torch

from rlvr.config import load_config
from rlvr.models.build import build_model
from rlvr.models.logprobs import LogprobModel, token_logprobs
from rlvr.train import precision, update
from rlvr.train.batches import layout
from rlvr.train.distributed import World
from rlvr.train.experience import Experience
from rlvr.train.optim import adamw
from rlvr.train.rl import Trainer
from rlvr.train.rl_config import RLConfig
from rlvr.train.sft import SFTConfig

CPU = torch.device("cpu")


def one_step(dtype: str, param_dtype: str, lr: float) -> tuple[torch.Tensor, torch.Tensor]:
    """All parameters (flat, fp32) before and after one AdamW step on a fixed batch of the tiny model."""
    config = SFTConfig(dtype=dtype, param_dtype=param_dtype)  # type: ignore[arg-type]
    model, _ = build_model(config, None, CPU, precision.param_dtype(config))
    ids = torch.randint(
        3, len(model.get_input_embeddings().weight), (4, 48), generator=torch.Generator().manual_seed(0)
    )
    before = torch.cat([p.detach().float().flatten() for p in model.parameters()])
    optimizer = adamw(model, lr=lr, weight_decay=0.0, betas=(0.9, 0.95))
    with precision.autocast(config.dtype, CPU):
        out = token_logprobs(model, ids, entropy="none")
    (-out.logp.sum() / out.mask.sum()).backward()
    optimizer.step()
    return before, torch.cat([p.detach().float().flatten() for p in model.parameters()])


def test_a_small_lr_step_under_bf16_compute_moves_the_fp32_masters_as_fp32_does():
    lr = 5e-6
    before32, fp32 = one_step("float32", "float32", lr)
    before16, bf16_compute = one_step("bfloat16", "float32", lr)
    with pytest.warns(UserWarning, match=r"param_dtype=bfloat16: .* rounded away"):
        before_bf16, bf16_params = one_step("bfloat16", "bfloat16", lr)
    changed = {
        "fp32": float((fp32 != before32).float().mean()),  # 0.988 (tokens absent from the batch do not move)
        "bf16 compute": float((bf16_compute != before16).float().mean()),  # 0.988
        "bf16 params": float((bf16_params != before_bf16).float().mean()),  # 0.079 (1e-6: 0.023)
    }
    assert changed["fp32"] > 0.98
    assert changed["bf16 compute"] >= changed["fp32"] - 1e-3
    assert changed["bf16 params"] < 0.2  # bf16 rounds most lr-sized updates away
    delta32, delta16 = fp32 - before32, bf16_compute - before16
    # AdamW's first step is ~lr * sign(g): bf16 noise flips the sign only of gradients near 0 (measured: cosine
    # 0.996, relative difference 0.085)
    assert float(torch.nn.functional.cosine_similarity(delta32, delta16, dim=0)) > 0.98
    assert float((delta16 - delta32).norm() / delta32.norm()) < 0.2
    assert torch.equal(before16, before32)  # from the same fp32 start


def test_autocast_computes_in_bf16_on_cpu_and_keeps_logprobs_and_gradients_fp32():
    linear = torch.nn.Linear(8, 8)
    x = torch.randn(2, 8)
    with precision.autocast("bfloat16", CPU):
        assert linear(x).dtype == torch.bfloat16
    for dtype in ("float32", "auto"):  # auto: fp32 on CPU (see the module docstring)
        with precision.autocast(dtype, CPU):
            assert linear(x).dtype == torch.float32
    config = SFTConfig()
    model, _ = build_model(config, None, CPU, precision.param_dtype(config))
    ids = torch.randint(3, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    with precision.autocast("bfloat16", CPU):
        out = token_logprobs(model, ids, entropy="grad")
    assert out.logp.dtype == torch.float32 and out.entropy is not None and out.entropy.dtype == torch.float32
    out.logp.sum().backward()
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("cls", [SFTConfig, RLConfig])
def test_configs_take_param_dtype_and_name_it_in_errors(cls):
    assert load_config(cls).param_dtype == "float32"
    assert load_config(cls, None, ["param_dtype=bfloat16"]).param_dtype == "bfloat16"
    for bad in ("float16", "fp32"):
        with pytest.raises(ValueError, match="param_dtype") as error:
            load_config(cls, None, [f"param_dtype={bad}"])
        assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=r"param_dtype=bfloat16 .* dtype=float32"):
        precision.param_dtype(load_config(cls, None, ["param_dtype=bfloat16", "dtype=float32"]))


def test_rl_keeps_policy_reference_and_critic_in_param_dtype(tmp_path):
    """The reference and the critic are built in the policy's parameter dtype (under the same autocast, the
    reference's log-probs then equal the policy's until the first update); the bf16 choice warns, fp32 does not."""
    args = [
        "model=tiny",
        "data=arith",
        "eval_data=null",
        f"out_dir={tmp_path}",
        "advantage=gae",
        "kl_coef=0.1",
    ]
    for param_dtype, want in (("float32", torch.float32), ("bfloat16", torch.bfloat16)):
        config = load_config(RLConfig, None, [*args, "dtype=bfloat16", f"param_dtype={param_dtype}"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t = Trainer(config, World(0, 1, 0, CPU), resume=False, progress=False)
        assert any("param_dtype" in str(w.message) for w in caught) == (param_dtype == "bfloat16")
        assert t.reference is not None and t.critic is not None
        for module in (t.model, t.reference, t.critic.model):
            assert {p.dtype for p in module.parameters()} == {want}


@pytest.mark.parametrize(
    ("share", "micro"),
    [("true", [[[0, 2], [3]], [[5, 6], [8, 9]]]), ("false", [[[0, 2], [3]], [[9, 5], [8, 6]]])],
)
def test_stored_old_logprobs_give_ratio_one_under_bf16_until_the_first_step(monkeypatch, share, micro):
    """lr 0 (the policy never moves), two mini-batches, rows of mixed lengths, some idle (advantage 0, left out
    of the forwards): under bf16 autocast every micro-batch's log-probs equal the stored old ones bitwise, which
    they do only when both were computed over the same micro-batches (`batches.forward_order`): rows as they come
    with shared prompts, shortest first when padded."""
    overrides = ["model=tiny", "dtype=bfloat16", "mini_batches=2", "micro_batch_size=2", "lr=0.0"]
    config = load_config(RLConfig, None, [*overrides, "temperature=0.7", f"share_prompts={share}"])
    model, _ = build_model(config, None, CPU, precision.param_dtype(config))
    policy = LogprobModel(model)
    g = torch.Generator().manual_seed(0)
    # idle rows (advantage 0) are long: chunks of consecutive rows would pad the short rows next to them to
    # their length, the update's micro-batches do not
    lengths = [12, 90, 15, 22, 70, 18, 30, 64, 26, 9]
    advantages = torch.tensor([1.0, 0.0, -1.0, 0.5, 0.0, 1.0, -1.0, 0.0, 2.0, -0.5])
    experience = Experience(
        sequences=[torch.randint(3, 100, (n,), generator=g).tolist() for n in lengths],
        prompt_lens=[4] * len(lengths),
        scores=advantages.clone(),
        advantages=advantages,
        trained=[True] * len(lengths),
    )
    minis = layout(experience, config, sharded=False)
    assert [m.micro for m in minis] == micro  # the rows that run
    update.store_logp(policy, experience, "old_logp", config, CPU)
    gaps: list[float] = []
    real = update.policy_loss

    def spy(
        logp: torch.Tensor,
        old_logp: torch.Tensor,
        advantages: torch.Tensor,
        mask: torch.Tensor,
        **kwargs: Any,
    ) -> Any:
        gaps.append(float(((logp.detach() - old_logp) * mask).abs().max()))
        return real(logp, old_logp, advantages, mask, **kwargs)

    monkeypatch.setattr(update, "policy_loss", spy)
    optimizer = adamw(model, lr=0.0, weight_decay=0.0, betas=(0.9, 0.999))
    world = World(0, 1, 0, CPU)
    metrics = update.update(policy, optimizer, experience, config, world, 64, 0)
    assert len(gaps) == 4 and gaps == [0.0] * 4
    assert metrics["train/ppo_kl"] == 0.0 and metrics["train/clip_low"] == metrics["train/clip_high"] == 0.0


@pytest.mark.parametrize(
    ("flags", "expected"),
    [({"avx512_bf16"}, "bfloat16"), ({"amx_bf16"}, "bfloat16"), ({"avx512f"}, "float32")],
)
def test_bf16_if_native_follows_the_cpu(monkeypatch, flags, expected):
    """A real-model recipe's `bf16-if-native`: bf16 on a CPU that multiplies it natively, fp32 where bf16 would be
    emulated (4.5x slower than fp32 on an AVX-512 Xeon without AVX512-BF16); resolved once, in the run's config."""
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags))
    cpu = torch.device("cpu")
    config = precision.resolved(RLConfig(dtype="bf16-if-native", rollout_dtype="bf16-if-native"), cpu)
    assert (config.dtype, config.rollout_dtype) == (expected, expected)
    assert precision.compute_dtype("bf16-if-native", cpu) == getattr(torch, expected)
    assert precision.resolved(SFTConfig(dtype="bf16-if-native"), cpu).dtype == expected
    assert precision.resolved(RLConfig(), cpu) == RLConfig()  # auto stays auto: fp32 on any CPU


def test_cpu_flags_are_read_from_cpuinfo():
    flags = precision.cpu_flags()
    assert not flags or "fpu" in flags  # Linux lists the x87 FPU first on x86; elsewhere nothing is read
