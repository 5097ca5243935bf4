"""A test plugin: GRPO that records, per process, a checksum of its weights after every update."""

from __future__ import annotations

import json
from pathlib import Path

from eapo_agents.algorithms.grpo import GRPOAgent
from eapo_agents.training.registry import register_agent


@register_agent("grpo-probe")
class ProbedGRPO(GRPOAgent):
    def train_step(self, step: int) -> dict[str, float]:
        metrics = super().train_step(step)
        rank = self.accelerator.process_index if self.accelerator is not None else 0
        checksum = float(sum(p.detach().double().abs().sum() for p in self.model.parameters()))
        problems = sorted({e.problem_id for e in self.last_episodes})
        path = Path(self.config.out) / f"probe_rank{rank}.jsonl"
        with path.open("a") as handle:
            handle.write(json.dumps({"step": step, "checksum": checksum, "problems": problems}) + "\n")
        return metrics

    def collect_groups(self, step, problems, group_size):
        groups = super().collect_groups(step, problems, group_size)
        self.last_episodes = [e for group in groups for e in group]
        return groups
