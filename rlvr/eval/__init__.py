"""Evaluation: reading labeled generation files and grading them. Pure Python: nothing here imports torch."""
