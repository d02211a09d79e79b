"""Models: load and save Hugging Face checkpoints (Qwen2 / Llama), tiny builders for tests and the demo, log-probs."""
