"""The run plots state the temperature of the held-out evaluations they draw."""

from __future__ import annotations

from rlvr.report.plots import held_out_label


def test_held_out_label_states_the_evaluation_temperature() -> None:
    greedy = [{"step": 0, "eval/accuracy": 0.2, "eval/temperature": 0.0}]
    sampled = [{"step": 0, "eval/accuracy": 0.2, "eval/temperature": 1.0}]
    assert held_out_label(greedy) == "held-out (greedy)"
    assert held_out_label(sampled) == "held-out (T=1)"
    assert held_out_label([{"step": 3, "train/accuracy": 0.5}]) == "held-out"
