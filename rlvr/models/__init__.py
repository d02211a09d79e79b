"""Models: the registry of named models, loading (checkpoint directories, GGUF, hub ids) and saving Hugging Face
checkpoints, the families the fast engine knows, tiny builders for tests and the demo, log-probs."""
