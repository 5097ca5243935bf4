"""What every agent shares: configuration and options, the agent base class and its registry,
the update loop, held-out evaluation, the training loop with checkpoints, and data parallelism."""
