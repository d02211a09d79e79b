"""Datasets: the record schema, the registry of benchmark and training sets, prompt templates, curation.

Pure Python (no torch). Optional heavy pieces (sentence embeddings, parquet) are imported where used.
"""
