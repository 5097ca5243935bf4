"""Agents that train a Hugging Face causal LM against ExpertMathEnv: GRPO, PPO, EAPO, baselines."""

from agents import baselines, eapo, grpo, ppo, sft  # noqa: F401  (registers the built-in agents)
from agents.base import AGENTS, Agent, BaseAgent, make_agent, register_agent

__all__ = ["AGENTS", "Agent", "BaseAgent", "make_agent", "register_agent"]
