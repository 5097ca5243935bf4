"""Training engines besides our own loop: TRL's ``GRPOTrainer`` (``eapo-gym train --engine trl``).

``contract`` (what each engine, ours included, honours and logs), ``trl_generation`` (the
rollout's generation inside the trainer, through TRL's public API), ``trl_rollout`` (the dataset
of update prompts and the ``rollout_func``), ``trl_settings`` (our settings as a ``GRPOConfig``)
and ``trl_train`` (the run: metrics, evaluation, checkpoint).
"""
