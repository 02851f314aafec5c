"""Configs of other fine-tuning tools (LLaMA-Factory, Axolotl) translated into ours, key by key
(`tunewright import-config`)."""
