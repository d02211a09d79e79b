"""Training stages: supervised fine-tuning (`sft`) and reinforcement learning (`rl`), with what they share:
process groups (`distributed`), optimizer and schedule (`optim`), checkpoints (`checkpoint`), metrics (`metrics`)."""
