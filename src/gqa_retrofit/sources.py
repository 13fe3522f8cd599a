"""Resolve what the user named (a local directory, a ``config.json`` path or a Hub id) to files.

Hub ids go through ``huggingface_hub`` (so ``HF_ENDPOINT``, ``HF_HUB_OFFLINE``, ``HF_TOKEN``,
revisions and the HF cache are honoured) and download only the files asked for.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .errors import ConfigError, ModelSourceError

# Files a transformers checkpoint needs besides the weights.
CHECKPOINT_SIDE_FILES = [
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "added_tokens.json",
]
WEIGHT_PATTERNS = ["*.safetensors", "model.safetensors.index.json"]

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
#: A Hub repository id with its owner (``owner/name``): what ``base_model`` and ``--push`` take.
HUB_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")


def check_hub_id(name: str, *, what: str) -> str:
    """``name`` when it is a Hub repo id (``owner/name``).

    Raises:
        ConfigError: it is not ``owner/name`` (the message names ``what`` and the value).
    """
    if not isinstance(name, str) or not HUB_REPO_ID.match(name):
        raise ConfigError(f"{what} {name!r} is not a Hub model id (owner/name)")
    return name


def looks_like_hub_id(name: str) -> bool:
    """True for ``owner/name`` or ``name`` strings that are not existing local paths."""
    return not Path(name).exists() and bool(_HUB_ID.match(name)) and ".." not in name


def _endpoint() -> str:
    from huggingface_hub import constants

    return str(constants.ENDPOINT)


def _hub_error(name: str, err: Exception) -> ModelSourceError:
    from huggingface_hub.errors import (
        GatedRepoError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(err, RevisionNotFoundError):
        return ModelSourceError(f"revision not found for Hub model {name!r}")
    if isinstance(err, GatedRepoError):
        return ModelSourceError(f"Hub model {name!r} is gated: log in with a token that has access")
    if isinstance(err, RepositoryNotFoundError):
        return ModelSourceError(
            f"Hub model {name!r} not found (or private without a valid token); give a local "
            "directory, a config.json path or an existing Hub id"
        )
    if isinstance(err, LocalEntryNotFoundError):
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        why = (
            "HF_HUB_OFFLINE is set and it is not in the HF cache"
            if offline
            else f"the Hub at {_endpoint()} cannot be reached and it is not in the HF cache"
        )
        return ModelSourceError(f"cannot resolve Hub model {name!r}: {why}")
    first = next((line for line in str(err).splitlines() if line.strip()), "")
    return ModelSourceError(f"cannot resolve {name!r}: {type(err).__name__}: {first.strip()}")


def resolve_config_file(
    name: str, *, revision: str | None = None, token: str | bool | None = None
) -> Path:
    """Path of the ``config.json`` for a local dir, a json file, or a Hub id (config only)."""
    path = Path(name)
    if path.is_file():
        return path
    if path.is_dir():
        config = path / "config.json"
        if not config.is_file():
            raise ModelSourceError(f"directory {name!r} has no config.json")
        return config
    if not looks_like_hub_id(name):
        raise ModelSourceError(
            f"model {name!r} is neither an existing path nor a Hub id (owner/name)"
        )
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(name, "config.json", revision=revision, token=token))
    except Exception as err:  # translated into one typed, one-line error
        raise _hub_error(name, err) from err


def resolve_checkpoint_dir(
    name: str,
    *,
    revision: str | None = None,
    token: str | bool | None = None,
    weights: bool = True,
    extra_patterns: list[str] | None = None,
) -> Path:
    """A local directory holding the checkpoint's config, tokenizer and (optionally) weights.

    Local directories are returned as they are; Hub ids are downloaded with only the needed
    files (safetensors weights, index, config, tokenizer and generation files).
    """
    path = Path(name)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise ModelSourceError(f"directory {name!r} has no config.json")
        return path
    if path.exists():
        raise ModelSourceError(f"{name!r} is a file; expected a model directory or a Hub id")
    if not looks_like_hub_id(name):
        raise ModelSourceError(
            f"model {name!r} is neither an existing directory nor a Hub id (owner/name)"
        )
    from huggingface_hub import snapshot_download

    patterns = list(CHECKPOINT_SIDE_FILES) + (WEIGHT_PATTERNS if weights else [])
    patterns += extra_patterns or []
    try:
        return Path(
            snapshot_download(name, revision=revision, token=token, allow_patterns=patterns)
        )
    except Exception as err:  # translated into one typed, one-line error
        raise _hub_error(name, err) from err
