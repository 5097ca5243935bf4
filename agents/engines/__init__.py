"""Training engines besides our own loop: TRL's ``GRPOTrainer`` (``eapo-gym train --engine trl``).

``trl_generation`` (the rollout's generation backend on the trainer's own generation path),
``trl_rollout`` (the ``rollout_func`` and the callback that sets rho_s), ``trl_settings`` (our
settings as a ``GRPOConfig``) and ``trl_train`` (the run: metrics, evaluation, checkpoint).
"""
