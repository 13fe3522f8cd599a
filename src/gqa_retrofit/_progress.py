"""Progress bars that follow the HF convention (tqdm) and can be silenced globally."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_QUIET = os.environ.get("GQA_RETROFIT_QUIET", "") not in ("", "0")


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar of the package."""
    global _QUIET
    _QUIET = quiet


def is_quiet() -> bool:
    return _QUIET


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """``tqdm`` that is disabled when the package is quiet (``--quiet``) or kwargs say so."""
    kwargs.setdefault("disable", _QUIET)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
