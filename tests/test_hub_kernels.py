"""Models load without transformers' Hub kernels (code downloaded from the Hugging Face Hub) unless
``--hub-kernels`` asks for them: the policy, the model expert and the TRL engine's reference model."""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM, PreTrainedModel

from eapo_agents.cli import main
from eapo_agents.engines import trl_train
from eapo_agents.training.config import TrainConfig
from eapo_agents.training.policy import load_policy
from eapo_gym.experts import TransformersExpert


@pytest.fixture
def kernel_requests(monkeypatch) -> list[bool]:
    """Whether each model that ``from_pretrained`` loads asks for Hub kernels (transformers calls
    ``set_use_kernels`` at the end of every load; here it is recorded and not run)."""
    requests: list[bool] = []

    def record(self, use_kernels, *args, **kwargs) -> None:
        requests.append(use_kernels)

    monkeypatch.setattr(PreTrainedModel, "set_use_kernels", record)
    return requests


def test_transformers_asks_for_hub_kernels_by_default(kernel_requests, tiny_model_dir):
    """What the tests below guard against: a plain load asks for them (transformers 5 with ``kernels``)."""
    AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert kernel_requests == [True]


def test_no_hub_kernels_unless_asked(kernel_requests, tiny_model_dir):
    load_policy(tiny_model_dir, "cpu")
    load_policy(tiny_model_dir, "cpu", "bfloat16", lora_rank=4)
    TransformersExpert(tiny_model_dir)
    assert kernel_requests == [False, False, False]
    load_policy(tiny_model_dir, "cpu", hub_kernels=True)
    TransformersExpert(tiny_model_dir, hub_kernels=True)
    assert kernel_requests[3:] == [True, True]


@pytest.mark.parametrize("hub_kernels", [False, True])
def test_the_trl_engine_loads_policy_and_reference_model_as_asked(kernel_requests, small_config, hub_kernels):
    config = small_config.replace(
        engine="trl", kl_beta=0.1, hub_kernels=hub_kernels, save_every=TrainConfig.save_every
    )  # the TRL engine saves at the end only
    run = trl_train.build(config, progress=False)
    assert run.trainer.ref_model is not None  # kl_beta > 0: TRL loaded a reference model itself
    assert kernel_requests == [hub_kernels, hub_kernels]  # the policy, then TRL's reference model


@pytest.mark.parametrize("flag", [[], ["--hub-kernels", "true"]])
def test_eval_loads_without_hub_kernels_unless_asked(kernel_requests, tiny_model_dir, tmp_path, flag):
    main(["eval", "--checkpoint", str(tiny_model_dir), "--k", "1", "--problems", "1", "--difficulties", "1",
          "--device", "cpu", "--out", str(tmp_path), *flag])  # fmt: skip
    assert kernel_requests == [bool(flag)]
