"""EAPO episodes inside TRL's ``GRPOTrainer``: the ``rollout_func``, the reward, the callback that sets s.

Why ``rollout_func`` and not TRL's environment API (``environment_factory``): the
environment API exposes an environment's methods as tools, so the policy must call
them in its chat template's tool-call format (parsed by ``parse_response``) and gets
the results back as tool messages, one call at a time. Our protocol is text tags
inside one assistant turn, with up to K queries per turn answered in one round and
the replies inserted in place, and it must work for models without a chat template
(the tiny preset). ``rollout_func`` receives the prompts and the trainer; the episodes
are played by our own rollout (``play_episodes`` over ``ExpertMathVectorEnv``, the
structured feedback building the mask), each turn generated through the trainer's
own generation path (``trl_generation``). What stays TRL's: vLLM (colocate or
server) and its weight sync, the advantages across processes, the loss, and
multi-GPU / DeepSpeed training under ``accelerate launch``.

Each dataset row's prompt is a problem id, drawn as our loop draws an update's problems
(``training.run.draw_episodes``); the trainer's sampler repeats it ``num_generations``
times, so each group replays one problem, and the episodes' seeds are our loop's too.
Each episode's rho and turn budget at the trainer's step are the algorithm's
(``TrainingEpisodes.reset_options``), as in our loop. Per episode TRL gets
``prompt_ids``, ``completion_ids`` (every turn, with the environment's reply blocks
in between), ``logprobs`` (vLLM's; ``None`` on the transformers path, which reports
none), ``env_mask`` (1 on the policy's tokens, 0 on replies, notices and reply tags;
all 0 for an episode cut at ``max_context`` when ``overlong`` is ``filter``) and
``env_reward``, which ``environment_reward`` hands back as the reward.

Experimental: TRL 1.x marks ``rollout_func`` experimental.
"""

from __future__ import annotations

import time
from typing import Any

from transformers import TrainerCallback

from eapo_gym.vector import ExpertMathVectorEnv

from ..rollout.episode import Episode
from ..rollout.play import play_episodes
from ..training.config import TrainConfig
from ..training.environments import TrainingEpisodes, make_vector_env
from ..training.run import draw_episodes, episode_rng
from .trl_generation import TrainerBackend


class EpisodeRollout:
    """``rollout_func(prompts, trainer)``: one episode per prompt, played at training step
    ``training_step`` (set by ``TrainingStepCallback``); the latest episodes stay in ``episodes``."""

    def __init__(self, config: TrainConfig, tokenizer, rules: TrainingEpisodes) -> None:
        self.config, self.tokenizer, self.episode_rules = config, tokenizer, rules
        self.training_step = 0
        self.episodes: list[Episode] = []
        self.rollout_seconds = 0.0
        self.envs: ExpertMathVectorEnv | None = None

    def __call__(self, prompts: list[str], trainer) -> dict[str, Any]:
        started = time.perf_counter()
        config = self.config
        if self.envs is None or self.envs.num_envs < len(prompts):
            self.envs = make_vector_env(config, len(prompts), "train", config.train_difficulties)
        step = self.training_step
        rng = episode_rng(config.seed, step, trainer.accelerator.process_index)
        _, seeds = draw_episodes(rng, len(self.envs.problems), config.problems_per_step, len(prompts))
        backend = TrainerBackend(trainer, self.tokenizer, self.envs.protocol, config.max_new_tokens)
        options = self.episode_rules.reset_options(step, config)
        episodes = play_episodes(
            backend,
            self.tokenizer,
            self.envs,
            seeds,
            list(prompts),
            config.max_context,
            reset_options=options,
        )
        backend.finish()
        for episode in episodes:
            if not episode.completion_ids:  # cut off before its first turn: TRL needs one token per row
                episode.add_env_tokens([self.tokenizer.eos_token_id])
        self.episodes, self.rollout_seconds = episodes, time.perf_counter() - started
        return {
            "prompt_ids": [e.prompt_ids for e in episodes],
            "completion_ids": [e.completion_ids for e in episodes],
            "logprobs": [e.sample_logprobs for e in episodes] if trainer.use_vllm else None,
            "env_mask": [self.loss_mask(e) for e in episodes],
            "env_reward": [e.reward for e in episodes],
        }

    def loss_mask(self, episode: Episode) -> list[int]:
        """The episode's policy-token mask; all 0 for an overlong episode under ``overlong=filter``."""
        if self.config.options.overlong == "filter" and episode.info.get("cut_off"):
            return [0] * len(episode.mask)
        return episode.mask


def environment_reward(completions: list, env_reward: list[float], **_: Any) -> list[float]:
    """GRPOTrainer reward function: what the environment paid each episode."""
    return [float(reward) for reward in env_reward]


class TrainingStepCallback(TrainerCallback):
    """Before each update, the rollout's training step s = the trainer's ``global_step`` + 1, so
    rho_s and the turn budget follow the trainer's own step count."""

    def __init__(self, rollout: EpisodeRollout) -> None:
        self.rollout = rollout

    def on_step_begin(self, args, state, control, **kwargs) -> None:
        self.rollout.training_step = state.global_step + 1
