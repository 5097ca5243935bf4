"""The package's default tokenizer: characters plus one token per protocol tag.

It is a real ``transformers.PreTrainedTokenizerFast`` saved under
``eapo_gym/assets/tokenizer`` and loaded with ``AutoTokenizer.from_pretrained``,
so the code path is the one a Hugging Face model's tokenizer takes. Any
character outside printable ASCII and newline maps to ``<unk>``.
"""

from __future__ import annotations

import json
import string
from functools import lru_cache
from pathlib import Path

from eapo_gym.protocol import DEFAULT_PROTOCOL

TOKENIZER_DIR = Path(__file__).parent / "assets" / "tokenizer"
GENERIC_FAST_CLASSES = ("TokenizersBackend", "PreTrainedTokenizerFast")
SPECIAL_TOKENS = {"pad_token": "<pad>", "eos_token": "<eos>", "unk_token": "<unk>"}


def build_char_tokenizer():
    """Build the character tokenizer from scratch (what ``assets/tokenizer`` holds)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    specials = list(SPECIAL_TOKENS.values())
    characters = ["\n", *(c for c in string.printable if c.isprintable())]
    vocab = {token: i for i, token in enumerate([*specials, *characters])}
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    core.decoder = decoders.Fuse()
    core.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    core.add_tokens([AddedToken(t, special=False, normalized=False) for t in DEFAULT_PROTOCOL.tags])
    return PreTrainedTokenizerFast(tokenizer_object=core, **SPECIAL_TOKENS)


@lru_cache(maxsize=8)
def load_tokenizer(path: str | Path = TOKENIZER_DIR):
    """Load a tokenizer from a local directory (the shipped one by default), offline.

    A directory whose ``tokenizer_config.json`` names the generic fast class is
    loaded as exactly that: ``AutoTokenizer`` in transformers 5 would otherwise
    swap in the model type's class (e.g. Qwen2's byte-level pre-tokenizer) when
    the directory also holds a model ``config.json``.
    """
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    config_file = Path(path) / "tokenizer_config.json"
    declared = json.loads(config_file.read_text()).get("tokenizer_class") if config_file.exists() else None
    if declared in GENERIC_FAST_CLASSES:
        return PreTrainedTokenizerFast.from_pretrained(str(path), local_files_only=True)
    return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
