"""Where gqa-retrofit keeps the assets it builds (never inside the package or the repo)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """``$GQA_RETROFIT_CACHE``, else ``$XDG_CACHE_HOME/gqa-retrofit``, else ``~/.cache/...``."""
    override = os.environ.get("GQA_RETROFIT_CACHE")
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "gqa-retrofit"
