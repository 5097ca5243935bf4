"""eapo_agents: agents that train a Hugging Face causal LM against ExpertMathEnv.

Layers, bottom to top, each importing only its own and those below it:

- ``rollout``: episodes as token ids with loss masks, played turn by turn through a
  generation backend (the seam for other engines);
- ``training``: what every agent shares: configuration and options, the agent base
  class and registry, the update loop, evaluation, checkpoints, data parallelism;
- ``algorithms``: one file per algorithm (GRPO, PPO, EAPO, SFT/distill, baselines),
  each its loss beside its equation;
- ``engines``: the TRL engine, training a registered algorithm through TRL's ``GRPOTrainer``;
- ``experiments``: the comparison, its report, the presets (recipes that train through the layers
  below and resolve ``--preset`` to a model directory);
- ``cli``: the command line.

``eapo_gym`` sits below them all. ``tests/test_architecture.py`` checks the order, ``import_module``
calls with a literal name included.

The names below are imported on first use, so ``eapo-gym demo`` never loads torch.
"""

from __future__ import annotations

from importlib import import_module

_PUBLIC = {
    "Agent": "eapo_agents.training.agent",
    "BaseAgent": "eapo_agents.training.agent",
    "register_agent": "eapo_agents.training.registry",
    "agent_names": "eapo_agents.training.registry",
    "TrainConfig": "eapo_agents.training.config",
    "train": "eapo_agents.training.loop",
    "evaluate": "eapo_agents.training.evaluation",
}


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'eapo_agents' has no attribute {name!r}")


__all__ = sorted(_PUBLIC)
