"""ExpertMathVectorEnv: N episodes stepped together, with one expert round per step for all of them.

``gym.make_vec("EAPOMath-v0", num_envs=N)`` returns it (the id's ``vector_entry_point``);
``vectorization_mode="sync"`` or ``"async"`` still give Gymnasium's generic vector envs.

Each sub-environment is an ``ExpertMathEnv`` with its own ``np_random``, so an
episode's problems, admissions, expert seeds, replies and ``info`` are exactly
those of a single env reset with the same seed. What differs is only how the
queries travel: every admitted query of a step, across all N episodes, is sent
in one ``ExpertPanel.round``, so each expert gets one batch per turn (a server
sees them arrive together), and the experts are built once and shared.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space, iterate

from eapo_gym.env import ExpertMathEnv, PendingTurn
from eapo_gym.experts import ExpertPanel, make_experts


class ExpertMathVectorEnv(VectorEnv):
    """``num_envs`` copies of ``ExpertMathEnv(**kwargs)`` with shared experts and batched expert rounds.

    ``reset(options=...)``: an option whose value is a list or tuple of length
    ``num_envs`` is split per env (e.g. ``{"problem_id": [id0, id1, ...]}``);
    ``reset_mask`` resets only the envs it marks (for ``autoreset_mode`` DISABLED
    or SAME_STEP). ``step_some(indices, actions)`` steps only some envs, with
    one round for them, and returns their results unbatched: the rollout uses it
    to stop stepping episodes that are over. ``expert_seconds`` adds up the time spent in expert rounds.
    """

    def __init__(
        self, num_envs: int, autoreset_mode: AutoresetMode | str = AutoresetMode.NEXT_STEP, **kwargs: Any
    ) -> None:
        if num_envs < 1:
            raise ValueError(f"num_envs must be at least 1, got {num_envs}")
        experts = make_experts(kwargs.pop("experts", "reference"))
        self.envs = [ExpertMathEnv(experts=experts, **kwargs) for _ in range(num_envs)]
        first = self.envs[0]
        self.panel = ExpertPanel(
            experts, first.panel.timeout, first.panel.parallel, first.panel.max_reply_chars
        )
        self.num_envs = num_envs
        self.render_mode = first.render_mode
        self.metadata = {**first.metadata, "autoreset_mode": AutoresetMode(autoreset_mode)}
        self.single_observation_space = first.observation_space
        self.single_action_space = first.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._observations: list[Any] = [None] * num_envs  # text and token batches are tuples
        self._autoreset = np.zeros(num_envs, dtype=np.bool_)
        self.expert_seconds = 0.0

    @property
    def protocol(self):
        return self.envs[0].protocol

    @property
    def problems(self):
        return self.envs[0].problems

    def reset(self, *, seed: int | Sequence[int | None] | None = None, options: dict[str, Any] | None = None):
        seeds = _per_env_seeds(seed, self.num_envs)
        options = dict(options or {})
        mask = np.asarray(options.pop("reset_mask", np.ones(self.num_envs, dtype=np.bool_)), dtype=np.bool_)
        per_env = [
            {key: value[i] if _is_per_env(value, self.num_envs) else value for key, value in options.items()}
            for i in range(self.num_envs)
        ]
        infos: dict[str, Any] = {}
        for i in np.flatnonzero(mask):
            observation, info = self.envs[i].reset(seed=seeds[i], options=per_env[i])
            self._observations[i] = observation
            infos = self._add_info(infos, info, i)
        self._autoreset[mask] = False
        return tuple(self._observations), infos

    def step(self, actions):
        actions = list(iterate(self.action_space, actions))
        mode = self.metadata["autoreset_mode"]
        resetting = np.flatnonzero(self._autoreset) if mode == AutoresetMode.NEXT_STEP else []
        stepping = [i for i in range(self.num_envs) if i not in set(resetting)]
        rewards = np.zeros(self.num_envs)
        terminations = np.zeros(self.num_envs, dtype=np.bool_)
        truncations = np.zeros(self.num_envs, dtype=np.bool_)
        infos: dict[str, Any] = {}
        for i in resetting:
            self._observations[i], info = self.envs[i].reset()
            infos = self._add_info(infos, info, i)
        results = self.step_some(stepping, [actions[i] for i in stepping])
        for i, (observation, reward, terminated, truncated, info) in zip(stepping, results, strict=True):
            rewards[i], terminations[i], truncations[i] = reward, terminated, truncated
            if mode == AutoresetMode.SAME_STEP and (terminated or truncated):
                final = {"final_obs": observation, "final_info": info}
                observation, info = self.envs[i].reset()
                info = {**info, **final}
            self._observations[i] = observation
            infos = self._add_info(infos, info, i)
        self._autoreset = terminations | truncations
        return tuple(self._observations), rewards, terminations, truncations, infos

    def step_some(self, indices: Sequence[int], actions: Sequence[Any]) -> list[tuple]:
        """Step envs ``indices`` with ``actions``, one expert round for all; their step results, in order."""
        pending = [self.envs[i].prepare_step(action) for i, action in zip(indices, actions, strict=True)]
        waiting = [k for k, step in enumerate(pending) if isinstance(step, PendingTurn)]
        started = time.perf_counter()
        outcomes = self.panel.round([pending[k].queries for k in waiting])
        self.expert_seconds += time.perf_counter() - started
        for k, turn_outcomes in zip(waiting, outcomes, strict=True):
            pending[k] = self.envs[indices[k]].finish_step(pending[k], turn_outcomes)
        return pending

    def render(self) -> tuple | None:
        return tuple(env.render() for env in self.envs)

    def call(self, name: str, *args: Any, **kwargs: Any) -> tuple:
        results = []
        for env in self.envs:
            attribute = getattr(env, name)
            results.append(attribute(*args, **kwargs) if callable(attribute) else attribute)
        return tuple(results)

    def get_attr(self, name: str) -> tuple:
        return tuple(getattr(env, name) for env in self.envs)

    def set_attr(self, name: str, values: Any) -> None:
        values = values if _is_per_env(values, self.num_envs) else [values] * self.num_envs
        for env, value in zip(self.envs, values, strict=True):
            setattr(env, name, value)

    def close_extras(self, **kwargs: Any) -> None:
        self.panel.close()


def _per_env_seeds(seed: int | Sequence[int | None] | None, count: int) -> list[int | None]:
    if seed is None:
        return [None] * count
    if isinstance(seed, int | np.integer):
        return [int(seed) + i for i in range(count)]
    if len(seed) != count:
        raise ValueError(f"expected {count} seeds, got {len(seed)}")
    return list(seed)


def _is_per_env(value: Any, count: int) -> bool:
    return isinstance(value, list | tuple) and len(value) == count
