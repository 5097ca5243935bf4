"""Experiments built on the agents: the tiny preset (``presets``), ``eapo-gym compare`` and its report."""
