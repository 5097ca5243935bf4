"""Agents that train a Hugging Face causal LM against ExpertMathEnv."""
