"""The policy: a Hugging Face causal LM and its tokenizer, on CUDA (bf16) or CPU (fp32)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import import_module
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


# Named starting policies, as ``module:function`` returning a model directory (imported on first use).
PRESETS = {"tiny": "eapo_agents.experiments.presets:tiny_policy_path"}


def starting_model_path(model: str, preset: str) -> Path:
    """``model`` if given, else the preset's directory (built on first use)."""
    if model:
        return Path(model)
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)} or give --model DIR")
    module, _, function = PRESETS[preset].partition(":")
    return getattr(import_module(module), function)()


def pick_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(device: torch.device, dtype: str = "auto") -> torch.dtype:
    """bf16 on CUDA, fp32 elsewhere, unless asked otherwise."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, dtype)


def build_tiny_model(tokenizer, config: TinyModelConfig | None = None, seed: int = 0) -> Qwen2ForCausalLM:
    """A freshly initialised tiny model, built from a config (no download)."""
    config = config or TinyModelConfig()
    model_config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
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


def load_policy(path: str | Path, device: str = "auto", dtype: str = "auto", lora_rank: int = 0):
    """Model and tokenizer from a local directory with ``from_pretrained`` (offline).

    A directory without tokenizer files gets the package's character tokenizer.
    ``lora_rank > 0`` wraps the model with a peft LoRA adapter on the attention projections.
    """
    torch_device = pick_device(device)
    model = AutoModelForCausalLM.from_pretrained(
        str(path), dtype=pick_dtype(torch_device, dtype), local_files_only=True
    ).to(torch_device)
    has_tokenizer = (Path(path) / "tokenizer_config.json").exists()
    tokenizer = load_tokenizer(Path(path)) if has_tokenizer else load_tokenizer()
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=lora_rank, lora_alpha=2 * lora_rank, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"]
        )
        model = get_peft_model(model, lora)
    return model, tokenizer


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
