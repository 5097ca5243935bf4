"""One module per algorithm, each registered by name in ``eapo_agents.training.registry``:
``grpo``, ``ppo``, ``eapo``, ``sft`` (with ``distill``), and the evaluation-only ``baselines``."""
