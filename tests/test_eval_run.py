"""`rlvr eval` and `rlvr sample`: a tiny model end to end, a resume after a cut or a kill equals an uninterrupted
run, settings mismatch, --compare, and the chain sample -> data prepare (difficulty) -> sft."""

from __future__ import annotations

import argparse
import json
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from rlvr.cli import main
from rlvr.data.readers import read_problems
from rlvr.data.schema import Problem
from rlvr.eval import run as eval_run
from rlvr.eval import sample as sample_cmd
from rlvr.eval.evaluate import EvalSettings, read_samples, sample_and_grade
from rlvr.eval.metrics import SampleRecord
from rlvr.models.checkpoint import save_checkpoint
from rlvr.models.tiny import build_tiny_pair
from rlvr.rewards.math import verify
from rlvr.rollout.types import Rollout, SamplingParams

TESTS = Path(__file__).resolve().parent

Script = Callable[
    [str, int, int], tuple[str, str]
]  # (problem text, sample index, seed) -> (text, finish reason)


class ScriptedEngine:
    """A `RolloutEngine` that answers from a script instead of a model; `delay` seconds per call."""

    def __init__(self, tokenizer, script: Script, delay: float = 0.0) -> None:
        self.tokenizer, self.script, self.delay = tokenizer, script, delay
        self.calls: list[int] = []  # prompts per generate call

    def generate(self, prompts: list[str], params: SamplingParams) -> list[Rollout]:
        time.sleep(self.delay)
        self.calls.append(len(prompts))
        out = []
        for i, prompt in enumerate(prompts):
            problem = re.search(r"user\n(.*?)<\|im_end\|>", prompt, re.S)
            assert problem is not None, prompt
            for j in range(params.n):
                text, reason = self.script(problem.group(1), j, params.seed or 0)
                ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
                out.append(Rollout(i, j, [], ids, text, [], reason))  # type: ignore[arg-type]
        return out


def seeded_script(problem: str, j: int, seed: int) -> tuple[str, str]:
    """Right on even samples; the text carries the chunk's seed, so a resume with other seeds would show."""
    a, b = problem.split("+")
    answer = int(a) + int(b) + (0 if j % 2 == 0 else 1)
    return f"seed {seed}: <answer>{answer}</answer>", "stop"


def problems_file(path: Path, count: int) -> Path:
    with path.open("w") as f:
        for i in range(count):
            f.write(json.dumps({"id": f"p{i}", "problem": f"{i}+{i + 1}", "answer": str(2 * i + 1)}) + "\n")
    return path


def parse(module, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    module.add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, object]:
    model, tokenizer = build_tiny_pair(seed=0)
    return save_checkpoint(model, tokenizer, tmp_path_factory.mktemp("model") / "tiny"), tokenizer


TINY_ARGS = ["--benchmarks", "arith_test", "--limit", "8", "--n", "2", "--max-new-tokens", "16"]
# 3 problems per chunk: 3 x 2 x (26 prompt tokens + 16) = 252 <= 300 < 4 x 2 x 42
TINY_ARGS += ["--template", "plain", "--chunk-tokens", "300", "--workers", "0", "--no-progress"]


def test_eval_of_a_tiny_model_end_to_end_then_resume_is_a_no_op(tiny, tmp_path, capsys) -> None:
    path, _ = tiny
    out = tmp_path / "run"
    assert eval_run.run(parse(eval_run, [str(path), *TINY_ARGS, "--out", str(out)])) == 0
    printed = capsys.readouterr().out
    assert "| Model | arith_test | Avg |" in printed
    assert re.search(r"\| tiny \| \d+\.\d \| \d+\.\d \|", printed)  # the row label: the model's directory
    assert "| arith_test | 8 | 2 |" in printed
    lines, cut = read_samples(out / "arith_test.samples.jsonl")
    assert not cut and len(lines) == 16
    for line in lines:  # every stored label is the verifier's verdict on the stored text and gold
        assert set(line) >= {"problem_id", "sample_index", "text", "answer", "extracted", "correct", "length"}
        assert verify(line["text"], line["answer"]).correct == line["correct"]
        assert line["finish_reason"] in ("stop", "length") and 1 <= line["length"] <= 16
    results = json.loads((out / "results.json").read_text())
    assert results["benchmarks"]["arith_test"]["problems"] == 8
    assert results["benchmarks"]["arith_test"]["samples"] == 16
    assert results["settings"]["chunk_tokens"] == 300 and results["settings"]["engine"] == "fast"
    assert "Sampling: n=2 at T=0.6 top_p=0.95, at most 16 new tokens, template plain." in printed
    assert "| Model | arith_test | Avg |" in (out / "results.md").read_text()

    before = (out / "arith_test.samples.jsonl").read_bytes()
    assert eval_run.run(parse(eval_run, [str(path), *TINY_ARGS, "--out", str(out), "--json"])) == 0
    assert json.loads(capsys.readouterr().out) == results  # one JSON object, nothing else on stdout
    assert (out / "arith_test.samples.jsonl").read_bytes() == before  # all complete: nothing sampled again


def test_resume_after_a_cut_line_equals_an_uninterrupted_run(tiny, tmp_path) -> None:
    path, _ = tiny
    full, cut = tmp_path / "full", tmp_path / "cut"
    assert eval_run.run(parse(eval_run, [str(path), *TINY_ARGS, "--out", str(full)])) == 0
    lines = (full / "arith_test.samples.jsonl").read_bytes().splitlines(keepends=True)
    cut.mkdir()
    shutil.copy(full / "eval_config.json", cut / "eval_config.json")
    # chunk 0 (problems 0-2) whole, then half a line of chunk 1 (the kill landed in its write)
    partial = b"".join(lines[:6]) + lines[6][: len(lines[6]) // 2]
    (cut / "arith_test.samples.jsonl").write_bytes(partial)
    assert read_samples(cut / "arith_test.samples.jsonl")[1]  # the cut is seen
    assert eval_run.run(parse(eval_run, [str(path), *TINY_ARGS, "--out", str(cut)])) == 0
    assert (cut / "arith_test.samples.jsonl").read_bytes() == (full / "arith_test.samples.jsonl").read_bytes()
    assert json.loads((cut / "results.json").read_text()) == json.loads((full / "results.json").read_text())


def test_a_rerun_with_other_settings_is_refused(tiny, tmp_path) -> None:
    path, _ = tiny
    out = tmp_path / "run"
    args = [str(path), *TINY_ARGS, "--out", str(out), "--limit", "2"]
    assert eval_run.run(parse(eval_run, args)) == 0
    with pytest.raises(ValueError, match=r"n=2 there, 4 now"):
        eval_run.run(parse(eval_run, [*args, "--n", "4"]))


def test_a_malformed_line_before_the_last_is_an_error(tmp_path) -> None:
    bad = tmp_path / "x.samples.jsonl"
    bad.write_text('{"problem_id": "a", "sample_index": 0, "text": "t"}\nnot json\n{"problem_id": "a"')
    with pytest.raises(ValueError, match=r"x.samples.jsonl:2"):
        read_samples(bad)


KILL_SCRIPT = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from test_eval_run import ScriptedEngine, seeded_script
from rlvr.data.readers import read_problems
from rlvr.eval.evaluate import EvalSettings, sample_and_grade
from rlvr.models.tokenizer import build_tiny_tokenizer
tok = build_tiny_tokenizer()
engine = ScriptedEngine(tok, seeded_script, delay=0.2)
settings = EvalSettings(n=3, template="plain", chunk_tokens=1, seed=5)
sample_and_grade(read_problems({data!r}), settings, tok, engine, Path({out!r}))
"""


def test_resume_after_a_kill_equals_an_uninterrupted_run(tiny, tmp_path) -> None:
    _, tokenizer = tiny
    data = problems_file(tmp_path / "problems.jsonl", 20)
    problems = read_problems(data)
    settings = EvalSettings(n=3, template="plain", chunk_tokens=1, seed=5)  # one problem per chunk
    full = tmp_path / "full.jsonl"
    expected = sample_and_grade(problems, settings, tokenizer, ScriptedEngine(tokenizer, seeded_script), full)
    killed = tmp_path / "killed.jsonl"
    script = KILL_SCRIPT.format(tests=str(TESTS), data=str(data), out=str(killed))
    proc = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 60
        while not (killed.exists() and killed.read_bytes().count(b"\n") >= 6) and time.monotonic() < deadline:
            assert proc.poll() is None, "the sampler ended before it could be killed"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    written = killed.read_bytes().count(b"\n")
    assert 6 <= written < 60  # killed part way
    engine = ScriptedEngine(tokenizer, seeded_script)
    resumed = sample_and_grade(problems, settings, tokenizer, engine, killed)
    assert resumed == expected
    assert killed.read_bytes() == full.read_bytes()
    assert sum(engine.calls) == 20 - written // 3  # only the missing problems were sampled


def test_compare_prints_two_runs_side_by_side(tiny, tmp_path, capsys) -> None:
    _, tokenizer = tiny
    problems = read_problems(problems_file(tmp_path / "p.jsonl", 4))

    def wrong(problem: str, j: int, seed: int) -> tuple[str, str]:
        return "<answer>-1</answer>", "stop"

    settings = EvalSettings(n=2, template="plain")
    for name, script in (("a", wrong), ("b", seeded_script)):
        engine = ScriptedEngine(tokenizer, script)
        eval_run.run_benchmarks({"toy": problems}, settings, tmp_path / name, tokenizer, engine, label=name)
    assert eval_run.run(parse(eval_run, ["--compare", str(tmp_path / "a"), str(tmp_path / "b")])) == 0
    printed = capsys.readouterr().out
    assert "| Benchmark | a | b | Δ |" in printed
    assert re.search(r"\| toy \| 0\.0 \[0\.0, 0\.0\] \| 50\.0 \[50\.0, 50\.0\] \| \+50\.0 \|", printed)
    assert "| Avg | 0.0 | 50.0 | +50.0 |" in printed


def test_sample_then_difficulty_filter_then_sft(tiny, tmp_path, capsys) -> None:
    """pass_rates.jsonl feeds `rlvr data prepare`'s difficulty step, sft.jsonl feeds `rlvr sft`."""
    _, tokenizer = tiny
    data = problems_file(tmp_path / "problems.jsonl", 6)

    def script(problem: str, j: int, seed: int) -> tuple[str, str]:
        """Problem i: samples j < i right (pass rate i/4, at most 1), longer with j; sample 0 of problem 3 is cut
        off, and sample 2 of problem 5 repeats sample 1."""
        a, b = map(int, problem.split("+"))
        if j >= a:
            return "<answer>0</answer>", "stop"
        text = f"{'so ' * (j if (a, j) != (5, 2) else 1)}<answer>{a + b}</answer>"
        return text, "length" if (a, j) == (3, 0) else "stop"

    out = tmp_path / "sample"
    figures = sample_cmd.sample_data(
        read_problems(data), EvalSettings(n=4, template="plain"), out, tokenizer,
        ScriptedEngine(tokenizer, script), id_prefix=eval_run.source_name(str(data)), keep="shortest",
        max_per_problem=2, dedup=True,
    )  # fmt: skip
    rates = [json.loads(line) for line in (out / "pass_rates.jsonl").read_text().splitlines()]
    assert [(r["id"], r["pass_rate"], r["n"], r["correct"]) for r in rates] == [
        ("problems:p0", 0.0, 4, 0), ("problems:p1", 0.25, 4, 1), ("problems:p2", 0.5, 4, 2),
        ("problems:p3", 0.75, 4, 3), ("problems:p4", 1.0, 4, 4), ("problems:p5", 1.0, 4, 4),
    ]  # fmt: skip
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    assert [(r["id"], r["response"]) for r in sft] == [
        ("problems:p1", "<answer>3</answer>"),
        ("problems:p2", "<answer>5</answer>"),
        ("problems:p2", "so <answer>5</answer>"),
        ("problems:p3", "so <answer>7</answer>"),  # sample 0 was cut off
        ("problems:p3", "so so <answer>7</answer>"),
        ("problems:p4", "<answer>9</answer>"),  # capped at the 2 shortest
        ("problems:p4", "so <answer>9</answer>"),
        ("problems:p5", "<answer>11</answer>"),
        ("problems:p5", "so <answer>11</answer>"),  # its repeat dropped, then the cap
    ]
    assert all(r["problem"] and r["answer"] for r in sft)
    assert (figures["correct"], figures["cut_off"], figures["duplicates"], figures["over_cap"]) == (
        14,
        1,
        1,
        3,
    )
    assert figures["unsolved"] == 1 and figures["sft_records"] == 9

    config = tmp_path / "prep.yaml"
    config.write_text(
        f"sources: [{{path: {data}}}]\noutput: {tmp_path / 'prepared' / 'train.jsonl'}\n"
        f"steps:\n  - difficulty: {{pass_rates: {out / 'pass_rates.jsonl'}, lo: 0.2, hi: 0.625}}\n"
    )
    assert main(["data", "prepare", str(config), "--json"]) == 0
    capsys.readouterr()
    kept = [p.id for p in read_problems(tmp_path / "prepared" / "train.jsonl")]
    assert kept == ["problems:p1", "problems:p2"]

    args = [f"data={out / 'sft.jsonl'}", "template=plain", "max_steps=2", "eval_data=null", "batch_size=4"]
    args += ["micro_batch_size=4", f"out_dir={tmp_path / 'sft'}", "max_length=64", "--json"]
    assert main(["sft", *args]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 2


def test_sample_command_on_a_tiny_model_then_rerun_without_the_model(
    tiny, tmp_path, capsys, monkeypatch
) -> None:
    path, _ = tiny
    data = problems_file(tmp_path / "mine.jsonl", 4)
    out = tmp_path / "sample"
    argv = [
        str(path),
        str(data),
        "--n",
        "2",
        "--max-new-tokens",
        "8",
        "--template",
        "plain",
        "--workers",
        "0",
    ]
    argv += ["--out", str(out), "--no-progress"]
    assert sample_cmd.run(parse(sample_cmd, argv)) == 0
    assert "wrote" in capsys.readouterr().out
    rates = [json.loads(line) for line in (out / "pass_rates.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rates] == ["mine:p0", "mine:p1", "mine:p2", "mine:p3"]
    assert all(r["n"] == 2 and r["pass_rate"] == r["correct"] / 2 for r in rates)
    correct = sum(line["correct"] for line in read_samples(out / "samples.jsonl")[0])
    assert len((out / "sft.jsonl").read_text().splitlines()) <= correct

    def no_model(*args: object) -> None:
        raise AssertionError("the model was loaded although every sample was on disk")

    monkeypatch.setattr(sample_cmd, "make_engine", no_model)
    argv += ["--keep", "random", "--max-per-problem", "1", "--id-prefix", "", "--json"]
    assert sample_cmd.run(parse(sample_cmd, argv)) == 0
    figures = json.loads(capsys.readouterr().out)
    assert figures["id_example"] == "p0" and figures["samples"] == 8


def test_select_responses_orders_dedups_and_caps() -> None:
    def rec(j: int, text: str, correct: bool = True, reason: str = "stop") -> SampleRecord:
        return SampleRecord("q", j, text, None, correct, len(text), reason)

    samples = [
        rec(0, "cccc"),
        rec(1, "a", correct=False),
        rec(2, "bb"),
        rec(3, "bb "),
        rec(4, "d", reason="length"),
    ]
    pick = sample_cmd.select_responses
    assert [r.sample_index for r in pick(samples)] == [0, 2, 3]  # correct and stopped, in sample order
    assert [r.sample_index for r in pick(samples, dedup=True)] == [0, 2]  # "bb " repeats "bb"
    assert [r.sample_index for r in pick(samples, keep="shortest")] == [2, 3, 0]
    assert [r.sample_index for r in pick(samples, keep="shortest", max_per_problem=1)] == [2]
    orders = {tuple(r.sample_index for r in pick(samples, keep="random", seed=s)) for s in range(20)}
    assert len(orders) > 1 and all(sorted(o) == [0, 2, 3] for o in orders)  # shuffled by the seed
    assert pick(samples, keep="random", seed=3) == pick(samples, keep="random", seed=3)


def test_problem_ids_must_be_unique() -> None:
    problems = [Problem("x", "1+1", "2"), Problem("x", "2+2", "4")]
    with pytest.raises(ValueError, match="occurs twice"):
        sample_and_grade(problems, EvalSettings(n=1), None, ScriptedEngine(None, seeded_script))


def test_evaluate_a_live_model_in_memory_gives_its_mode_back() -> None:
    """The trainer's call: no files, the live model's own engine, train mode restored."""
    from rlvr.data.registry import load_dataset
    from rlvr.eval.evaluate import evaluate

    model, tokenizer = build_tiny_pair(seed=1)
    model.train()
    settings = EvalSettings(n=2, max_new_tokens=8, template="plain", limit=3)
    summary = evaluate(model, tokenizer, load_dataset("arith_test"), settings, bootstrap=10)
    assert (summary.problems, summary.samples, summary.bootstrap) == (3, 6, 10)
    assert 0 <= summary.pass_at_1 <= summary.metrics["pass@2"] <= 1 and "maj@2" in summary.metrics
    assert model.training


def test_each_set_is_graded_by_its_own_rule(tiny, tmp_path) -> None:
    """arith_test declares final_form: an echoed, unevaluated `a+b` is wrong there, as in training; a problem file
    declares nothing, so the same text is read as the expression's value (rlvr eval and rlvr sample alike)."""
    _, tokenizer = tiny

    def echo(problem: str, j: int, seed: int) -> tuple[str, str]:
        return f"The answer is {problem}.", "stop"  # "The answer is 457+68."

    arith = read_problems(problems_file(tmp_path / "p.jsonl", 3))
    assert eval_run.final_forms(["arith_test", str(tmp_path / "p.jsonl")]) == {"arith_test": True, "p": False}
    settings = EvalSettings(n=1, template="plain")
    for name, expected in (("arith_test", 0.0), ("p", 1.0)):
        engine = ScriptedEngine(tokenizer, echo)
        summaries = eval_run.run_benchmarks({name: arith}, settings, tmp_path / name, tokenizer, engine)
        assert summaries[name].pass_at_1 == expected, name
    with eval_run.grading_pools({"arith_test": True, "p": False}, 0, 1.0) as graders:
        (echoed,) = graders["arith_test"].grade([("The answer is 0+1.", "1")])
        (read,) = graders["p"].grade([("The answer is 0+1.", "1")])
    assert (echoed.correct, echoed.reason, read.correct) == (False, "unevaluated", True)


def test_settings_of_a_run_that_sampled_nothing_bind_nothing(tiny, tmp_path) -> None:
    """A run stopped before its first sample (a template the tokenizer refused) left only its settings: the rerun
    with good ones goes ahead; once samples exist, other settings are refused."""
    _, tokenizer = tiny
    problems = read_problems(problems_file(tmp_path / "p.jsonl", 2))
    out = tmp_path / "run"
    out.mkdir()
    (out / "eval_config.json").write_text(json.dumps({"template": "qwen_math", "n": 1}))
    engine = ScriptedEngine(tokenizer, seeded_script)
    eval_run.run_benchmarks({"toy": problems}, EvalSettings(n=1, template="plain"), out, tokenizer, engine)
    assert json.loads((out / "eval_config.json").read_text())["template"] == "plain"
    with pytest.raises(ValueError, match="holds samples drawn with other settings"):
        eval_run.run_benchmarks(
            {"toy": problems}, EvalSettings(n=2, template="plain"), out, tokenizer, engine
        )
