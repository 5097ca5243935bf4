"""A test plugin: every training rollout of either engine appends its episodes' problems and seeds to
``$DRAWS_PROBE_DIR/rank{RANK}.jsonl``, one line per rollout."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eapo_agents.engines import trl_rollout
from eapo_agents.training import agent


def recording(play):
    def play_episodes(backend, tokenizer, envs, seeds, problem_ids, *args, **kwargs):
        path = Path(os.environ["DRAWS_PROBE_DIR"]) / f"rank{os.environ.get('RANK', '0')}.jsonl"
        with path.open("a") as handle:
            handle.write(json.dumps({"problems": list(problem_ids), "seeds": list(seeds)}) + "\n")
        return play(backend, tokenizer, envs, seeds, problem_ids, *args, **kwargs)

    return play_episodes


agent.play_episodes = recording(agent.play_episodes)
trl_rollout.play_episodes = recording(trl_rollout.play_episodes)
