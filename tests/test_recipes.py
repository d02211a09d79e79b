"""Shipped recipes: each loads into its stage's config, opens with the command that runs it, and keeps the published
numbers it claims; `rlvr ls` lists them all; tiny-dapo's combination of knobs runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.config import load_config
from rlvr.data import pipeline
from rlvr.recipes import command_line, find_recipe, shipped
from rlvr.train.rl_config import RLConfig
from rlvr.train.sft import SFTConfig

ROOT = Path(__file__).resolve().parents[1]
RECIPES = shipped()
VERBS = {"data": ["data", "prepare"], "sft": ["sft"], "rl": ["train"]}  # rlvr subcommand of each folder


def rl(name: str) -> RLConfig:
    return load_config(RLConfig, find_recipe(name, "rl"))


def test_every_stage_folder_has_recipes():
    assert {p.parent.name for p in RECIPES} == set(VERBS)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_loads_with_its_stage_config(path: Path):
    stage = path.parent.name
    if stage == "data":
        config = pipeline.load_config(path)
        assert config.sources and config.output
    elif stage == "sft":
        assert isinstance(load_config(SFTConfig, path), SFTConfig)
    else:
        config = load_config(RLConfig, path)
        assert config.stages and all(s.steps > 0 and s.max_new_tokens > 0 for s in config.stages)


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_recipe_opens_with_the_command_that_runs_it(path: Path):
    assert path.read_text(encoding="utf-8").startswith("# rlvr ")
    words = command_line(path).split()
    verb = VERBS[path.parent.name]
    assert words[0] == "rlvr" and words[1 : 1 + len(verb)] == verb, words
    # the recipe: a name (tiny-grpo) or a path from the repository root (rlvr/recipes/data/deepscaler.yaml)
    arg = words[1 + len(verb)]
    assert Path(arg).name.removesuffix(".yaml") == path.stem
    target = ROOT / arg if "/" in arg else find_recipe(arg, path.parent.name)
    assert target.resolve() == path.resolve()
    for override in words[2 + len(verb) :]:  # key=value arguments on the command line are real fields
        key = override.split("=", 1)[0]
        if path.parent.name == "rl" and "=" in override:
            assert key in RLConfig.__dataclass_fields__, override


def test_ls_json_lists_every_recipe(capsys):
    assert main(["ls", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["recipes"]
    assert sorted(r["name"] for r in rows) == sorted(f"{p.parent.name}/{p.stem}" for p in RECIPES)
    assert all(r["command"].startswith("rlvr ") for r in rows)


def test_deepscaler_stages_and_settings():
    c = rl("deepscaler-1.5b")
    assert [s.max_new_tokens for s in c.stages] == [8192, 16384, 24576]
    assert [s.n for s in c.stages] == [8, 16, 16]
    ends = [sum(s.steps for s in c.stages[: k + 1]) for k in range(len(c.stages))]
    assert ends == [1040, 1520, 1750]
    assert [s.reset_reference for s in c.stages] == [False, True, True]
    assert (c.prompts_per_step, c.mini_batches, c.lr, c.temperature) == (128, 2, 1e-6, 0.6)
    assert (c.kl_coef, c.kl_estimator, c.kl_in, c.clip_low, c.clip_high) == (0.001, "k3", "loss", 0.2, 0.2)
    assert (c.entropy_coef, c.reward, c.template, c.eval_data) == (
        0.001,
        "deepscaler",
        "deepscaler",
        "aime24",
    )
    data_output = pipeline.load_config(find_recipe("data/deepscaler")).output
    assert (
        c.data == data_output
    )  # trains on what `rlvr data prepare rlvr/recipes/data/deepscaler.yaml` writes


def test_dapo_settings():
    c = rl("dapo-32b")
    assert (c.clip_low, c.clip_high, c.kl_coef, c.entropy_coef) == (0.2, 0.28, 0.0, 0.0)
    assert (c.loss_agg, c.dynamic_sampling, c.overlong, c.overlong_buffer) == (
        "token-mean",
        True,
        "soft",
        4096,
    )
    assert [s.max_new_tokens for s in c.stages] == [20480] and [s.n for s in c.stages] == [16]
    assert (c.prompts_per_step, c.mini_batches, c.lr) == (512, 16, 1e-6)


def test_dr_grpo_settings():
    c = rl("dr-grpo-oat-zero-7b")
    assert (c.advantage, c.loss_agg, c.kl_coef, c.overlong) == (
        "dr_grpo",
        "seq-mean-token-sum-norm",
        0.0,
        "zero",
    )
    assert (c.prompts_per_step, c.stages[0].n, c.stages[0].max_new_tokens) == (128, 8, 3000)
    assert c.template == "qwen_math"


def test_simplerl_settings():
    c = rl("simplerl-zero-7b")
    assert (c.kl_coef, c.kl_in, c.lr, c.temperature) == (0.01, "reward", 5e-7, 0.6)
    assert (c.prompts_per_step, c.stages[0].n, c.stages[0].max_new_tokens) == (1024, 8, 3000)
    assert (c.reward, c.template, c.data) == ("simplerl", "simplerl", "simplerl_math_l3to5")
    assert "critic" in find_recipe("simplerl-zero-7b").read_text().lower()  # the approximation is stated


def test_light_r1_and_r1_zero_settings():
    c = rl("light-r1-14b")
    assert (c.entropy_coef, c.kl_coef, c.kl_estimator, c.lr) == (0.0, 0.001, "k3", 1e-6)
    assert (c.prompts_per_step, c.stages[0].n, c.stages[0].max_new_tokens) == (128, 8, 24000)
    z = rl("r1-zero")
    assert (z.template, z.reward, z.advantage, z.kl_estimator, z.kl_in) == (
        "r1_zero",
        "r1_zero",
        "grpo",
        "k3",
        "loss",
    )
    assert z.kl_coef == 0.001 and [s.n for s in z.stages] == [16, 16]


def test_rewards_and_templates_of_every_rl_recipe_exist():
    from rlvr.data.templates import TEMPLATES
    from rlvr.rewards.functions import REWARDS

    for path in RECIPES:
        if path.parent.name == "rl":
            c = load_config(RLConfig, path)
            assert c.reward in REWARDS and c.template in TEMPLATES, path.name


def test_tiny_dapo_knobs_run_two_steps(tmp_path):
    """tiny-dapo's knobs together (clip-higher, dynamic sampling, overlong filter) on a random tiny model, with
    one-digit problems (a random model hits some by chance, so some groups are mixed and kept)."""
    from rlvr.train import distributed
    from rlvr.train.rl import Trainer

    data = tmp_path / "digits.jsonl"
    data.write_text(
        "".join(json.dumps({"id": str(i), "problem": str(i), "answer": str(i)}) + "\n" for i in range(10))
    )
    c = load_config(
        RLConfig,
        find_recipe("tiny-dapo", "rl"),
        [
            "model=tiny", f"data={data}", "eval_data=null", f"out_dir={tmp_path / 'run'}", "prompts_per_step=4",
            "stages=[{steps: 2, max_new_tokens: 8, n: 4}]", "max_sample_rounds=1", "save_every=0",
        ],
    )  # fmt: skip
    assert (c.clip_high, c.dynamic_sampling, c.overlong, c.loss_agg) == (0.28, True, "filter", "token-mean")
    figures = Trainer(c, distributed.init("cpu"), resume=False, progress=False).train()
    assert figures["steps"] == 2
