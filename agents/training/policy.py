"""The policy: a Hugging Face causal LM and its tokenizer, on CUDA (bf16) or CPU (fp32).

Precision (``--dtype``): ``bfloat16`` and ``float32`` hold the weights and compute in that dtype;
``float16`` is mixed precision: float32 weights, float16 compute under ``autocast`` and, in
training, loss scaling (float16 weights cannot hold AdamW's small steps and moments).
Models load offline and without the Hub kernels of transformers 5 unless ``hub_kernels``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, Qwen2Config, Qwen2ForCausalLM

from eapo_gym.tokenizer import load_tokenizer


@dataclass(frozen=True)
class TinyModelConfig:
    """A small Qwen2-architecture model over the package's character tokenizer (about 0.9M parameters)."""

    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    intermediate_size: int = 384
    max_positions: int = 1024
    num_kv_heads: int = 0  # grouped-query attention's key/value heads; 0: as many as num_heads


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """bf16 on CUDA, fp32 elsewhere, unless asked otherwise (the compute dtype)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def weights_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """The dtype the weights are held in: the compute dtype, except float32 under float16 (mixed)."""
    compute = pick_dtype(device, dtype)
    return torch.float32 if compute == torch.float16 else compute


def autocast(device: torch.device, dtype: str = "auto"):
    """The context that runs float16 compute over float32 weights (``float16``); inactive otherwise."""
    return torch.autocast(device.type, torch.float16, enabled=pick_dtype(device, dtype) == torch.float16)


@contextmanager
def hub_kernels_allowed(allowed: bool) -> Iterator[None]:
    """Within the block, transformers' ``from_pretrained`` calls that others make (TRL's reference
    model) fetch Hub kernels only if ``allowed`` (the ``USE_HUB_KERNELS`` environment variable)."""
    previous = os.environ.get("USE_HUB_KERNELS")
    if not allowed:
        os.environ["USE_HUB_KERNELS"] = "0"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("USE_HUB_KERNELS", None)
        else:
            os.environ["USE_HUB_KERNELS"] = previous


def build_tiny_model(tokenizer, config: TinyModelConfig | None = None, seed: int = 0) -> Qwen2ForCausalLM:
    """A freshly initialised tiny model, built from a config (no download)."""
    config = config or TinyModelConfig()
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_kv_heads or config.num_heads,
        intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_positions,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return Qwen2ForCausalLM(model_config)


def load_pretrained(path: str | Path, dtype: torch.dtype | str = "auto", hub_kernels: bool = False):
    """``AutoModelForCausalLM.from_pretrained`` offline, with transformers' Hub kernels (code fetched from
    the Hugging Face Hub, e.g. ``kernels-community/rotary``) only if ``hub_kernels``."""
    return AutoModelForCausalLM.from_pretrained(
        str(path), dtype=dtype, local_files_only=True, use_kernels=hub_kernels
    )


def load_policy(
    path: str | Path, device: str = "auto", dtype: str = "auto", lora_rank: int = 0, hub_kernels: bool = False
):
    """Model and tokenizer from a local directory with ``from_pretrained`` (offline).

    A directory without tokenizer files gets the package's character tokenizer. The weights are
    in ``weights_dtype(device, dtype)``; ``hub_kernels`` lets transformers fetch kernels from the Hub.
    ``lora_rank > 0`` wraps the model with a peft LoRA adapter on the attention projections; from a
    directory that holds an adapter (a LoRA run's checkpoint: ``save_pretrained`` writes the adapter
    only) it trains that adapter on, over the base model the adapter names, whatever its rank.
    """
    torch_device = pick_device(device)
    adapter = Path(path) / "adapter_config.json"
    if lora_rank > 0 and adapter.exists():
        from peft import PeftModel

        base_path = json.loads(adapter.read_text())["base_model_name_or_path"]
        base = load_pretrained(base_path, weights_dtype(torch_device, dtype), hub_kernels).to(torch_device)
        model = PeftModel.from_pretrained(base, str(path), is_trainable=True)
    else:
        model = load_pretrained(path, weights_dtype(torch_device, dtype), hub_kernels).to(torch_device)
        model = add_lora(model, lora_rank) if lora_rank > 0 else model
    has_tokenizer = (Path(path) / "tokenizer_config.json").exists()
    tokenizer = load_tokenizer(Path(path)) if has_tokenizer else load_tokenizer()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def add_lora(model, rank: int):
    """``model`` wrapped with a peft LoRA adapter of rank ``rank`` on the attention projections (its
    adapter weights in float32 whatever the model's dtype: peft's ``autocast_adapter_dtype``)."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])
    return get_peft_model(model, lora)


def save_policy(model, tokenizer, path: str | Path) -> None:
    Path(path).mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(path))
    tokenizer.save_pretrained(str(path))


def check_model_directory(path: str | Path) -> None:
    """Raise ``ValueError`` saying why ``path`` is no model directory: missing, without a config or
    weights, or with a damaged ``*.safetensors`` file (its header does not fit the file). Reads no weights
    and never looks for a hub repository."""
    path = Path(path)
    if not path.is_dir():
        raise ValueError("no such directory" if not path.exists() else "not a directory")
    if not any((path / name).exists() for name in ("config.json", "adapter_config.json")):
        raise ValueError("not a model directory (no config.json)")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("*.bin")):
        raise ValueError("not a model directory (no model.safetensors)")
    for file in weights:
        problem = _safetensors_problem(file)
        if problem:
            raise ValueError(f"{file.name} is damaged ({problem})")


def _safetensors_problem(file: Path) -> str | None:
    """What is wrong with a safetensors file's layout (header length, JSON header, data), if anything."""
    size = file.stat().st_size
    with file.open("rb") as handle:
        length = int.from_bytes(handle.read(8), "little") if size >= 8 else 0
        if size < 8 or length > size - 8:
            return f"{size} bytes, cut off inside its header"
        try:
            header = json.loads(handle.read(length))
            ends = [entry["data_offsets"][1] for key, entry in header.items() if key != "__metadata__"]
        except (ValueError, TypeError, KeyError, IndexError):
            return "its header is not a safetensors header"
    expected = 8 + length + max(ends, default=0)
    return None if size >= expected else f"{size} bytes where its header describes {expected}"
