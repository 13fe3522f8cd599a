"""Tiny random models of every family the package knows, built in-process for unit tests.

``tiny_config("llama")`` returns a transformers config small enough that a forward pass takes
milliseconds; ``save_tiny_model(dir, "llama")`` writes a real safetensors checkpoint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

VOCAB = 128

_BASE: dict[str, Any] = dict(
    vocab_size=VOCAB,
    hidden_size=64,
    intermediate_size=96,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=256,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)

# Per-family overrides on top of _BASE (field names as each config class expects them).
TINY_OVERRIDES: dict[str, dict[str, Any]] = {
    "llama": {},
    "mistral": {},
    "qwen2": {},
    "qwen3": {"head_dim": 16},
    "gemma2": {"head_dim": 16, "sliding_window": 8, "query_pre_attn_scalar": 16},
    "gemma3_text": {"head_dim": 16, "sliding_window": 8},
    "phi3": {},
    "mixtral": {"num_local_experts": 4, "num_experts_per_tok": 2},
    "gpt2": {"n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 256},
    "gpt_neox": {},
    "opt": {"ffn_dim": 96, "word_embed_proj_dim": 64},
    "falcon": {"num_kv_heads": 2, "new_decoder_architecture": True},
}

TINY_FAMILIES = sorted(TINY_OVERRIDES)


def tiny_config(model_type: str, **overrides: Any) -> Any:
    """A tiny transformers config of ``model_type`` (extra kwargs override the defaults)."""
    from transformers import AutoConfig

    kwargs = dict(_BASE)
    kwargs.update(TINY_OVERRIDES[model_type])
    kwargs.update(overrides)
    return AutoConfig.for_model(model_type, **kwargs)


def tiny_model(model_type: str, *, seed: int = 0, **overrides: Any) -> Any:
    """A tiny randomly initialised causal LM (fp32, eval mode, deterministic for ``seed``)."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(tiny_config(model_type, **overrides))
    return model.eval()


def tiny_tokenizer() -> Any:
    """A character-level fast tokenizer (printable ASCII, ids < 128) matching the tiny vocab."""
    import string

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2, "<unk>": 3}
    for char in string.printable:
        if char not in "\x0b\x0c\r":
            vocab.setdefault(char, len(vocab))
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        unk_token="<unk>",
        pad_token="<pad>",
    )


def save_tiny_model(
    path: str | Path,
    model_type: str,
    *,
    seed: int = 0,
    max_shard_size: str | None = None,
    with_tokenizer: bool = True,
    **overrides: Any,
) -> Path:
    """Write a tiny random checkpoint (safetensors) of ``model_type``, with a tokenizer."""
    path = Path(path)
    model = tiny_model(model_type, seed=seed, **overrides)
    kwargs = {"max_shard_size": max_shard_size} if max_shard_size else {}
    model.save_pretrained(path, **kwargs)
    if with_tokenizer:
        tiny_tokenizer().save_pretrained(path)
    return path
