"""Chaos test of resume: SIGKILL a tiny RL run and a tiny SFT run at random moments, some of them inside a
checkpoint write, resume each time, and check that the finished run equals an uninterrupted one exactly.

    python bench/chaos.py                       # 20 kills (10 RL, 10 SFT) over 20 steps each, ~2 minutes on 2 cores
    python bench/chaos.py --kills 40 --seed 1 --steps 30
    python bench/chaos.py --smoke               # 3 kills over 6 steps each, ~50 s: tests/test_bench_chaos.py
    python bench/chaos.py --serial --work-dir /tmp/chaos   # one run at a time; keep the run directories

Each run is `rlvr train` / `rlvr sft` in a subprocess (`model=tiny`, a generated file of 40 one-digit sums, one
thread, `save_every=1`, `keep_last=2`, `checkpoint_optimizer=float32`: the bf16 default rounds AdamW's moments,
so only float32 resumes bit-exact); RL and SFT run side by side (`--serial`: one after the other). RL runs two
stages, the second resetting the optimizer, so resumes also land across a stage change; SFT runs several epochs
over the file. First an uninterrupted reference of each (the same config with `keep_last=0`, which keeps every
checkpoint for the checks below), timed by watching its run directory: startup, seconds per step, seconds
per checkpoint write. Then the chaos run: a seeded plan of kills, each a target step and a moment:

  step     u × (one step) after this attempt wrote checkpoint t-1 (or, for its first step, after it rewrote
           metrics.jsonl, which it does just before its loop): anywhere in step t, its metrics row or its checkpoint
  save     u × (one write) after `.step-t.tmp` appears under RUN/checkpoints: inside checkpoint t's write
  startup  u × (startup: spawn to the loop, as the last attempt took) after the process starts, at the latest as
           the loop starts: imports, model and checkpoint load, the metrics.jsonl rewrite
  final    as soon as `RUN/.final.*.tmp` appears: inside the write of the final model (the last kills only)

After each kill: the step the killed process had reached (its last metrics row), the checkpoint the next attempt
resumes from (`rlvr.train.checkpoint.latest`), the steps lost (reached - resumed: done again), whether the kill left
a half-written `.tmp` directory (it landed inside a save), and whether every checkpoint that
`rlvr.train.checkpoint.checkpoints` lists is complete, loadable and equal (weights, trainer.pt, torch's RNG state) to
the reference's checkpoint of that step; a `.tmp` one listed, or one that differs, counts as a half-written
checkpoint picked up. Then `--resume` again, until the run exits 0. At the end (`identical`): final/model.safetensors
tensor by tensor, metrics.jsonl row by row without time, perf and memory figures, and the last checkpoints as above
(written after the last resume: a wrong RNG restore shows there, since these runs draw nothing from torch's global
RNG), all exactly; RL's samples.jsonl too; and nothing a kill left (a `.tmp` or `.old` directory) remains.

The plan is seeded (`--seed`); where a kill lands in wall-clock terms depends on the machine, so the figures
(reached, lost, in save) are measured, not planned. The last line of stdout is one JSON object (--json: only it).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

POLL_S = 0.0005  # how often the watcher looks at the run directory
# metrics that measure the machine, not the run (and keys ending _per_s): left out of the comparison
VOLATILE = ("time/", "perf/", "mem/")
MODES = {"step": 0.45, "save": 0.35, "startup": 0.1, "final": 0.1}  # the share of kills of each kind


@dataclass
class Timings:
    """From the reference run: seconds from spawn to the training loop (metrics.jsonl written; then updated from
    each attempt), per step, per checkpoint write, in all."""

    startup_s: float
    step_s: float
    save_s: float
    total_s: float


@dataclass
class Kill:
    mode: str  # step, save, startup, final
    target: int  # the step the plan aimed at (its save, for save kills)
    u: float  # where in the moment's window, in [0, 1)
    killed: bool = False  # False: the process exited before the moment came
    reached: int = 0  # the last step the killed process logged
    resumed_from: int = 0  # the step of the checkpoint the next attempt resumes from (0: none)
    lost: int = 0  # steps done again
    in_save: str = ""  # "step-N" / "final": the kill left that write half-done
    checkpoints: list[int] = field(default_factory=list)  # what checkpoints() lists after the kill
    problems: list[str] = field(default_factory=list)  # listed checkpoints that are incomplete or differ


# --smoke (6 steps): each kill leaves steps to run after the resume, so a resume that restores the wrong state shows;
# the save kills strike as soon as the .tmp directory appears (well inside the write), losing the step just logged
SMOKE = {"rl": [Kill("save", 2, 0.0), Kill("step", 4, 0.5)], "sft": [Kill("save", 3, 0.0)]}


# -- the two runs ------------------------------------------------------------------------------------------------
def write_data(path: Path, count: int = 40) -> Path:
    """One-digit sums with worked solutions: RL reads problem and answer (a random tiny model hits some by chance,
    so groups have mixed rewards), SFT the solution."""
    rng = random.Random(0)
    with path.open("w") as f:
        for i in range(count):
            a, b = rng.randrange(5), rng.randrange(5)
            solution = f"<think>{a}+{b}</think><answer>{a + b}</answer>"
            f.write(
                json.dumps({"id": str(i), "problem": f"{a}+{b}", "answer": str(a + b), "solution": solution})
            )
            f.write("\n")
    return path


def command(kind: str, data: Path, out: Path, steps: int, keep_last: int) -> list[str]:
    common = [f"data={data}", "eval_data=null", f"out_dir={out}", "model=tiny", "save_every=1"]
    common += [f"keep_last={keep_last}", "checkpoint_optimizer=float32"]
    if kind == "rl":
        first = steps // 2
        stages = (
            f"[{{steps: {first}, max_new_tokens: 12, n: 8}}, "
            f"{{steps: {steps - first}, max_new_tokens: 12, n: 8, reset_optimizer: true}}]"
        )
        extra = ["prompts_per_step=8", f"stages={stages}", "lr=1e-3", "sample_every=1"]
    else:
        extra = ["batch_size=8", "micro_batch_size=3", "lr=3e-3", "warmup_steps=2", "max_length=64"]
        extra += [f"max_steps={steps}"]
    stage = "train" if kind == "rl" else "sft"
    return [sys.executable, "-m", "rlvr", stage, *common, *extra, "--no-progress"]


def spawn(cmd: list[str], resume: bool, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    with log.open("ab") as out:  # the child holds its own descriptor
        return subprocess.Popen(
            [*cmd, "--resume"] if resume else cmd,
            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


def ckpt(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:06d}"


def tmp_dirs(run: Path, since_ns: int) -> list[str]:
    """Half-written checkpoints created after `since_ns`: `.step-N.tmp` ("step-N") and `.final.*.tmp` ("final")."""
    found = []
    for folder, prefix in ((run / "checkpoints", ".step-"), (run, ".final.")):
        if folder.is_dir():
            for entry in os.scandir(folder):
                name = entry.name
                if name.startswith(prefix) and name.endswith(".tmp") and entry.stat().st_mtime_ns >= since_ns:
                    found.append("final" if prefix == ".final." else name[1:-4])
    return found


# -- the reference -----------------------------------------------------------------------------------------------
def reference(kind: str, data: Path, work: Path, steps: int) -> tuple[Path, Timings]:
    """Run uninterrupted, watching when each checkpoint write starts (its .tmp appears) and ends (renamed)."""
    run = work / f"{kind}-reference"
    start = time.time()
    proc = spawn(command(kind, data, run, steps, keep_last=0), False, work / f"{kind}-reference.log")
    began: dict[int, float] = {}
    ended: dict[int, float] = {}
    looping = 0.0  # when metrics.jsonl appeared: the loop starts
    while proc.poll() is None:
        now = time.time() - start
        if not looping and (run / "metrics.jsonl").exists():
            looping = now
        for s in range(1, steps + 1):
            if s not in ended and ckpt(run, s).is_dir():
                ended[s] = now
            elif s not in began and (run / "checkpoints" / f".step-{s:06d}.tmp").is_dir():
                began[s] = now
        time.sleep(POLL_S)
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} reference run failed: see {work / f'{kind}-reference.log'}")
    total = time.time() - start
    gaps = [ended[s] - ended[s - 1] for s in range(2, steps + 1) if s in ended and s - 1 in ended]
    saves = [ended[s] - began[s] for s in began if s in ended]
    return run, Timings(
        startup_s=looping or total, step_s=statistics.median(gaps) if gaps else 0.2,
        save_s=statistics.median(saves) if saves else 0.02, total_s=total,
    )  # fmt: skip


# -- checks --------------------------------------------------------------------------------------------------------
def same(a: Any, b: Any) -> bool:
    """Exact equality of nested checkpoint state: tensors bit for bit (NaNs in the same places), the rest by ==."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (
            isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
            and a.shape == b.shape and torch.equal(a.view(-1).view(torch.uint8), b.view(-1).view(torch.uint8))
        )  # fmt: skip
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """What a resume reads from a checkpoint: the weights, trainer.pt and torch's RNG state (not Python's: its
    global `random` is seeded by the OS at start, differs between any two runs, and rlvr draws nothing from it);
    config and tokenizer parsed. Raises on a missing or truncated file."""
    import torch
    from safetensors.torch import load_file

    json.loads((path / "config.json").read_text())
    json.loads((path / "tokenizer.json").read_text())
    rng = torch.load(path / "rng-0.pt", weights_only=False)
    return {
        "model.safetensors": load_file(path / "model.safetensors"),
        "trainer.pt": torch.load(path / "trainer.pt", map_location="cpu", weights_only=False),
        "rng-0.pt": {k: v for k, v in rng.items() if k != "python"},
    }


def check_checkpoints(run: Path, ref: Path) -> tuple[list[int], list[str]]:
    """The steps `checkpoints()` lists, and what is wrong with any of them: not a step directory, a part missing
    or unreadable, or anything different from the reference's checkpoint of the same step."""
    from rlvr.train import checkpoint

    steps, problems = [], []
    for path in checkpoint.checkpoints(run):
        if not checkpoint.STEP_DIR.match(path.name):
            problems.append(f"{path.name}: listed, not a complete step directory")
            continue
        step = int(path.name.split("-")[1])
        steps.append(step)
        try:
            parts = read_checkpoint(path)
        except Exception as e:  # a truncated or missing file
            problems.append(f"{path.name}: unreadable ({type(e).__name__}: {e})")
            continue
        if parts["trainer.pt"]["step"] != step:
            problems.append(f"{path.name}: trainer.pt says step {parts['trainer.pt']['step']}")
        expected = read_checkpoint(ckpt(ref, step))
        problems += [
            f"{path.name}/{name}: differs" for name in parts if not same(parts[name], expected[name])
        ]
    return steps, problems


def logged_steps(path: Path) -> list[int]:
    """Steps of the complete rows of metrics.jsonl (a row cut by a kill is not one)."""
    steps = []
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(ValueError, KeyError, TypeError):
            steps.append(int(json.loads(line)["step"]))
    return steps


def steady(row: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in row.items() if not k.startswith(VOLATILE) and not k.endswith("_per_s")}


def compare(run: Path, ref: Path) -> dict[str, Any]:
    """The finished run against the reference: final weights, metrics rows, (RL) sample rows."""
    from safetensors.torch import load_file

    mine = load_file(run / "final" / "model.safetensors")
    theirs = load_file(ref / "final" / "model.safetensors")
    differ = sorted(k for k in theirs if k not in mine or not same(mine[k], theirs[k]))
    differ += sorted(k for k in mine if k not in theirs)
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    expected = [json.loads(line) for line in (ref / "metrics.jsonl").read_text().splitlines()]
    bad_rows = [
        i for i in range(max(len(rows), len(expected)))
        if i >= len(rows) or i >= len(expected) or steady(rows[i]) != steady(expected[i])
    ]  # fmt: skip
    first = {"row": bad_rows[0], "steps": [r["step"] for r in rows]} if bad_rows else None
    out: dict[str, Any] = {
        "weights_identical": not differ,
        "tensors": len(theirs),
        "tensors_differing": differ[:10],
        "metrics_identical": not bad_rows,
        "metrics_rows": len(rows),
        "metrics_rows_expected": len(expected),
        "metrics_rows_differing": len(bad_rows),
        "metrics_first_difference": first,
    }
    if (ref / "samples.jsonl").exists():
        samples = (run / "samples.jsonl").read_text().splitlines()
        wanted = (ref / "samples.jsonl").read_text().splitlines()
        out["samples_identical"] = samples == wanted
        out["samples_rows"], out["samples_rows_expected"] = len(samples), len(wanted)
    # what a kill leaves, and a run starting or resuming clears
    patterns = ("checkpoints/.step-*.tmp", "checkpoints/.step-*.old", ".final.*")
    out["leftovers"] = sorted(str(p.relative_to(run)) for pattern in patterns for p in run.glob(pattern))
    return out


# -- the chaos run ---------------------------------------------------------------------------------------------------
def plan(rng: random.Random, kills: int, steps: int) -> list[Kill]:
    """`kills` moments spread over the run (target steps sorted), final-model kills last."""
    modes = rng.choices(list(MODES), weights=list(MODES.values()), k=kills)
    targets = sorted(rng.randint(1, steps) for _ in range(kills))
    out = [Kill(mode, t, rng.random()) for mode, t in zip(modes, targets, strict=True)]
    return [k for k in out if k.mode != "final"] + [k for k in out if k.mode == "final"]


def attempt(
    proc: subprocess.Popen[bytes], run: Path, kill: Kill, resumed: int, steps: int, t: Timings
) -> None:
    """Wait for the kill's moment, then SIGKILL the process's group (the run has no other processes). The time
    this attempt took to reach its loop, when it got there, becomes `t.startup_s` for the next."""
    start = time.time()
    spawned_ns = time.time_ns()
    mode, target = kill.mode, kill.target
    if resumed >= steps:  # only the final model is left to write
        mode = "final"
    target = min(max(target, resumed + 1), steps)  # a step this attempt has still to do
    kill.mode, kill.target = mode, target
    looping: list[float] = []  # when the attempt (re)wrote metrics.jsonl: its loop starts

    def due() -> bool:
        if not looping and fresh(run / "metrics.jsonl", spawned_ns):
            looping.append(time.time() - start)
        if mode == "startup":  # at the latest, as the loop starts
            return bool(looping) or time.time() - start >= kill.u * t.startup_s
        if mode == "final":
            return "final" in tmp_dirs(run, spawned_ns)
        if mode == "save":
            return fresh(run / "checkpoints" / f".step-{target:06d}.tmp", spawned_ns)
        if target - 1 > resumed:  # step: after this attempt's checkpoint t-1 (or a later one), u of a step
            return ckpt(run, target - 1).is_dir() or ckpt(run, target).is_dir()
        return bool(looping)  # step t is the attempt's first: u of a step after the loop starts

    while not due():
        if proc.poll() is not None:
            return
        time.sleep(POLL_S)
    time.sleep({"save": kill.u * t.save_s, "step": kill.u * t.step_s}.get(mode, 0.0))
    with contextlib.suppress(ProcessLookupError):  # it may have just exited
        os.killpg(proc.pid, signal.SIGKILL)
    kill.killed = proc.wait() == -signal.SIGKILL
    if kill.killed:
        saves = tmp_dirs(run, spawned_ns)
        kill.in_save = saves[0] if saves else ""
    if looping:
        t.startup_s = looping[0]


def fresh(path: Path, since_ns: int) -> bool:
    """`path` exists and was created or written after `since_ns` (by the attempt spawned then)."""
    try:
        return path.stat().st_mtime_ns >= since_ns
    except FileNotFoundError:
        return False


def chaos(
    kind: str, data: Path, work: Path, steps: int, kills: list[Kill], t: Timings, ref: Path
) -> dict[str, Any]:
    from rlvr.train import checkpoint

    run = work / kind
    measured = asdict(t)  # t.startup_s follows the attempts from here on
    cmd = command(kind, data, run, steps, keep_last=2)
    log = work / f"{kind}.log"
    start, attempts, resumed, finished = time.time(), 0, 0, False
    for kill in kills:
        metrics = run / "metrics.jsonl"
        before = metrics.read_bytes() if metrics.exists() else b""
        proc = spawn(cmd, attempts > 0, log)
        attempts += 1
        attempt(proc, run, kill, resumed, steps, t)
        if not kill.killed:
            if proc.returncode != 0:
                raise RuntimeError(f"{kind}: attempt {attempts} exited {proc.returncode}: see {log}")
            finished = True  # before the moment came
            break
        after = metrics.read_bytes() if metrics.exists() else b""
        # a process killed before it rewrote metrics.jsonl (MetricsLog) did no step: its rows are the last one's
        kill.reached = resumed if after == before else max([resumed, *logged_steps(metrics)])
        last = checkpoint.latest(run)
        kill.resumed_from = resumed = int(last.name.split("-")[1]) if last else 0
        kill.lost = kill.reached - kill.resumed_from
        kill.checkpoints, kill.problems = check_checkpoints(run, ref)
    if not finished:
        proc = spawn(cmd, attempts > 0, log)
        attempts += 1
        if proc.wait() != 0:
            raise RuntimeError(f"{kind}: the last attempt exited {proc.returncode}: see {log}")
    done = [k for k in kills if k.killed]
    listed, problems = check_checkpoints(run, ref)  # the last ones, written after the last resume
    return {
        "steps": steps,
        "kills": len(done),
        "kills_planned": len(kills),
        "kills_in_save": sum(bool(k.in_save) for k in done),
        "attempts": attempts,
        "max_steps_lost": max((k.lost for k in done), default=0),
        "steps_lost": sum(k.lost for k in done),
        "half_written_picked_up": any(k.problems for k in done),
        "leftover_tmp": sorted(set(tmp_dirs(run, 0))),
        "seconds": time.time() - start,
        "reference": measured,
        **compare(run, ref),
        "checkpoints_identical": not problems,  # the last checkpoints equal the reference's of the same steps
        "checkpoints_at_end": listed,
        "checkpoint_problems_at_end": problems,
        "per_kill": [asdict(k) for k in kills],
    }


def report(kind: str, r: dict[str, Any]) -> None:
    print(f"{kind}: {r['steps']} steps, {r['kills']} kills ({r['kills_in_save']} inside a save), "
          f"{r['attempts']} attempts, {r['seconds']:.0f} s; reference {r['reference']['step_s']:.2f} s/step, "
          f"{1000 * r['reference']['save_s']:.0f} ms/save, startup {r['reference']['startup_s']:.1f} s")  # fmt: skip
    print(
        f"  {'kill':>4}  {'mode':<7} {'target':>6} {'reached':>7} {'resumed':>7} {'lost':>4}  {'in save':<12} listed"
    )
    for i, k in enumerate(r["per_kill"], 1):
        listed = ",".join(map(str, k["checkpoints"])) or "-"
        state = "; ".join(k["problems"]) or "ok"
        if not k["killed"]:
            print(f"  {i:>4}  {k['mode']:<7} {k['target']:>6}  (the run finished before this moment)")
            continue
        print(
            f"  {i:>4}  {k['mode']:<7} {k['target']:>6} {k['reached']:>7} {k['resumed_from']:>7} {k['lost']:>4}  "
            f"{k['in_save'] or '-':<12} {listed} {state}"
        )
    weights = "identical" if r["weights_identical"] else f"DIFFER ({', '.join(r['tensors_differing'])})"
    metrics = "identical" if r["metrics_identical"] else f"DIFFER ({r['metrics_first_difference']})"
    print(
        f"  final weights ({r['tensors']} tensors): {weights}; metrics ({r['metrics_rows']} rows): {metrics}"
    )
    ends = "; ".join(r["checkpoint_problems_at_end"]) or "identical"
    print(f"  last checkpoints ({', '.join(map(str, r['checkpoints_at_end']))}): {ends}")
    if "samples_identical" in r:
        print(
            f"  samples.jsonl: {'identical' if r['samples_identical'] else 'DIFFERS'} "
            f"({r['samples_rows']} rows, uninterrupted {r['samples_rows_expected']})"
        )
    if r["leftover_tmp"]:
        print(f"  left in the run directory: {', '.join(r['leftover_tmp'])} (.tmp)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=20, help="SIGKILLs in all, split between RL and SFT")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps of each run")
    parser.add_argument("--seed", type=int, default=0, help="the kill plan")
    parser.add_argument("--smoke", action="store_true", help="3 fixed kills (SMOKE) over 6 steps each")
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="keep the runs here (default: a temp dir)"
    )
    parser.add_argument("--serial", action="store_true", help="RL, then SFT (default: side by side)")
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    args = parser.parse_args(argv)
    if args.smoke:
        args.kills, args.steps = 3, 6
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="rlvr-chaos-") as tmp:
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        data = write_data(work / "digits.jsonl")
        plans = copy.deepcopy(SMOKE) if args.smoke else {
            "rl": plan(rng, (args.kills + 1) // 2, args.steps),
            "sft": plan(rng, args.kills // 2, args.steps),
        }  # fmt: skip

        def one(kind: str) -> dict[str, Any]:
            ref, timings = reference(kind, data, work, args.steps)
            return chaos(kind, data, work, args.steps, plans[kind], timings, ref)

        with ThreadPoolExecutor(1 if args.serial else 2) as pool:  # each run is one single-threaded process
            runs = dict(zip(plans, pool.map(one, plans), strict=True))
    if not args.json:
        for kind, r in runs.items():
            report(kind, r)
    summary = {
        "kills": sum(r["kills"] for r in runs.values()),
        "kills_in_save": sum(r["kills_in_save"] for r in runs.values()),
        "max_steps_lost": max(r["max_steps_lost"] for r in runs.values()),
        "identical": all(
            r["weights_identical"]
            and r["metrics_identical"]
            and r["checkpoints_identical"]
            and r.get("samples_identical", True)
            and not r["leftovers"]
            for r in runs.values()
        ),
        "half_written_picked_up": any(r["half_written_picked_up"] for r in runs.values()),
        "samples_identical": runs["rl"].get("samples_identical"),
        "seed": args.seed,
        "steps": args.steps,
        "runs": runs,
    }
    if not args.json:
        print(
            f"{summary['kills']} kills ({summary['kills_in_save']} inside a checkpoint write): final weights, metrics "
            f"and checkpoints {'identical' if summary['identical'] else 'DIFFER'}, at most {summary['max_steps_lost']} "
            f"step lost per kill, half-written checkpoint picked up: {summary['half_written_picked_up']}"
        )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
