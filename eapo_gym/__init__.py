"""eapo-gym: a Gymnasium environment for Expert-Assisted Policy Optimization (arXiv 2509.23730)."""

from __future__ import annotations

import gymnasium as gym
from gymnasium.envs.registration import register

__version__ = "0.1.0"

ENV_ID = "EAPOMath-v0"

if ENV_ID not in gym.registry:
    register(
        id=ENV_ID,
        entry_point="eapo_gym.env:ExpertMathEnv",
        vector_entry_point="eapo_gym.vector:ExpertMathVectorEnv",
    )


def __getattr__(name: str):
    if name == "ExpertMathEnv":
        from eapo_gym.env import ExpertMathEnv

        return ExpertMathEnv
    if name == "ExpertMathVectorEnv":
        from eapo_gym.vector import ExpertMathVectorEnv

        return ExpertMathVectorEnv
    raise AttributeError(f"module 'eapo_gym' has no attribute {name!r}")


__all__ = ["ENV_ID", "ExpertMathEnv", "ExpertMathVectorEnv"]
