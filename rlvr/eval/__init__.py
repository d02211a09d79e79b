"""Evaluation: benchmark runs with pass@k / cons@k and confidence intervals (`run`, `evaluate`, `metrics`),
rejection sampling (`sample`), re-grading published generation files (`grade`, `generations`), and the quick
held-out accuracy trainers log (`accuracy`). Modules import torch only inside the functions that generate."""
