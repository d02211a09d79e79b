"""PNG plots of an RL run's `metrics.jsonl`: reward, accuracy (train and held-out), response length of correct vs
wrong responses, truncation — one file each, over steps. matplotlib with the Agg backend (no display needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rlvr.train.metrics import read_metrics

# file name -> (title, y label, [(metric, label)])
PLOTS: dict[str, tuple[str, str, list[tuple[str, str]]]] = {
    "reward.png": ("Reward", "mean reward", [("train/reward_mean", "train (sampled)")]),
    "accuracy.png": (
        "Accuracy",
        "share correct",
        [("train/accuracy", "train (sampled)"), ("eval/accuracy", "held-out")],
    ),
    "length.png": (
        "Response length",
        "tokens",
        [("train/length_correct", "correct"), ("train/length_wrong", "wrong")],
    ),
    "truncation.png": ("Truncated responses", "share hitting max_new_tokens", [("train/truncated", "train")]),
}


def series(records: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    """(steps, values) of one metric; the last value wins when a step logged it twice."""
    points = {r["step"]: r[key] for r in records if r.get(key) is not None}
    steps = sorted(points)
    return steps, [float(points[s]) for s in steps]


def held_out_label(records: list[dict[str, Any]]) -> str:
    """The held-out line's label, with the temperature its evaluations sampled at."""
    _, temperatures = series(records, "eval/temperature")
    if not temperatures:
        return "held-out"
    t = temperatures[-1]
    return "held-out (greedy)" if t == 0 else f"held-out (T={t:g})"


def plot_run(metrics: Path, out_dir: Path) -> list[Path]:
    """Write the PNGs of `PLOTS` for the run whose metrics are at `metrics`; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    records = read_metrics(metrics)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, (title, ylabel, lines) in PLOTS.items():
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
        for key, label in lines:
            steps, values = series(records, key)
            if key == "eval/accuracy":
                label = held_out_label(records)
            if steps:
                marker = "o" if key.startswith("eval/") else None
                ax.plot(steps, values, label=label, marker=marker, linewidth=1.5)
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if len(lines) > 1:
            ax.legend()
        fig.tight_layout()
        path = out_dir / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
