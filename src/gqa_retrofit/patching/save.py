"""Write a patched config (and, for custom types, the code that defines it) to a directory."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from .._fs import atomic_output_dir
from ..arch.layout import attention_geometry
from ..errors import ConfigError
from .config import family_of, patch_config
from .custom_types import CUSTOM_TYPES, custom_classes, register_custom_types


def load_config(source: str | os.PathLike[str]) -> Any:
    """A transformers config from a model directory, a ``config.json`` file or a Hub id.

    Raises:
        ModelSourceError: the source cannot be resolved.
        ConfigError: the file is not a JSON object with a ``model_type``.
    """
    from transformers import AutoConfig

    from ..sources import resolve_config_file

    path = resolve_config_file(str(source))
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"cannot read config {str(path)!r}: {exc}") from None
    if not isinstance(values, dict) or not isinstance(values.get("model_type"), str):
        raise ConfigError(f"config {str(path)!r} has no model_type")
    register_custom_types()
    model_type = values.pop("model_type")
    # unsupported families fail here, with the list of supported ones
    family_of(SimpleNamespace(model_type=model_type))
    try:
        return AutoConfig.for_model(model_type, **values)
    except Exception as exc:
        raise ConfigError(f"config {str(path)!r} is invalid: {exc}".splitlines()[0]) from None


def write_patched_config(
    source: str | os.PathLike[str] | Any,
    out_dir: str | os.PathLike[str],
    *,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Patch a config and write it to ``out_dir`` (atomically), ready for training from scratch.

    For custom types the directory also gets the configuration/modeling files and ``auto_map``,
    so ``AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(out_dir,
    trust_remote_code=True), trust_remote_code=True)`` works without gqa_retrofit.

    Args:
        source: a config object, a model directory, a ``config.json`` path or a Hub id.
        out_dir: the directory to create.
        heads: query heads; kv_heads: KV heads; head_dim: head size (unset: keep).
        overwrite: replace ``out_dir`` if it exists.

    Returns:
        ``{"out", "model_type", "heads", "kv_heads", "head_dim", "files"}``.

    Raises:
        UnsupportedFamilyError, ConfigError, ModelSourceError, OutputExistsError.
    """
    is_path = isinstance(source, str | os.PathLike)
    config = load_config(source) if is_path else source
    patched = patch_config(config, heads=heads, kv_heads=kv_heads, head_dim=head_dim)
    src_dir = None
    if isinstance(source, str | os.PathLike) and Path(source).exists():
        src_dir = Path(source) if Path(source).is_dir() else Path(source).parent
    with atomic_output_dir(out_dir, overwrite=overwrite, source=src_dir) as tmp:
        if patched.model_type in CUSTOM_TYPES:
            import torch
            from transformers.dynamic_module_utils import custom_object_save

            _, model_class = custom_classes(patched.model_type)
            with torch.device("meta"):
                model = model_class(patched)
            custom_object_save(model, tmp, config=patched)
        patched.save_pretrained(tmp)
        files = sorted(p.name for p in tmp.iterdir() if not p.name.startswith("."))

    geo = attention_geometry(family_of(patched), patched)
    return {
        "out": str(out_dir),
        "model_type": patched.model_type,
        "heads": geo.heads,
        "kv_heads": geo.kv_heads,
        "head_dim": geo.head_dim,
        "files": files,
    }
