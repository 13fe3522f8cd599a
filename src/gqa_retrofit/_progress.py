"""Progress bars that follow the HF convention (tqdm) and can be silenced globally.

``set_quiet(True)`` (the CLI's ``-q/--quiet``) silences this package's bars and also the bars
and info/warning logs of transformers, huggingface_hub and datasets (already imported or not:
their environment switches are set for later imports and child processes). Notices about
defaults the user did not choose (:func:`notice`) are printed even when quiet.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import Any, TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")

_QUIET = os.environ.get("GQA_RETROFIT_QUIET", "") not in ("", "0")

# environment switches the HF libraries read at import time (and child processes inherit)
_QUIET_ENV = {
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1",
    "GQA_RETROFIT_QUIET": "1",
}


_saved: dict[str, Any] = {}  # what set_quiet(True) replaced, restored by set_quiet(False)


def set_quiet(quiet: bool) -> None:
    """Silence (or re-enable) every progress bar of the package and of the HF libraries."""
    global _QUIET
    if quiet and not _saved:
        _saved["env"] = {name: os.environ.get(name) for name in _QUIET_ENV}
        if "transformers" in sys.modules:
            from transformers.utils import logging as hf_logging

            _saved["verbosity"] = hf_logging.get_verbosity()
    _QUIET = quiet
    if quiet:
        os.environ.update(_QUIET_ENV)
    elif _saved:
        for name, value in _saved.pop("env", {}).items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    _quiet_loaded_libraries(quiet, _saved.pop("verbosity", None) if not quiet else None)


def _quiet_loaded_libraries(quiet: bool, verbosity: int | None) -> None:
    """Apply ``quiet`` to the HF libraries that are imported already (never imports them)."""
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        if quiet:
            hf_logging.disable_progress_bar()
            hf_logging.set_verbosity_error()
        else:
            hf_logging.enable_progress_bar()
            if verbosity is not None:
                hf_logging.set_verbosity(verbosity)
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars, enable_progress_bars

        (disable_progress_bars if quiet else enable_progress_bars)()
    if "datasets" in sys.modules:
        from datasets.utils import logging as ds_logging

        if quiet:
            ds_logging.disable_progress_bar()
        else:
            ds_logging.enable_progress_bar()


def is_quiet() -> bool:
    return _QUIET


def notice(message: str) -> None:
    """One line on stderr about a default or a deprecated name (printed even when quiet)."""
    print(f"gqa-retrofit: note: {message}", file=sys.stderr, flush=True)


def progress(iterable: Iterable[T] | None = None, **kwargs: Any) -> Any:
    """``tqdm`` that is disabled when the package is quiet (``--quiet``) or kwargs say so."""
    kwargs.setdefault("disable", _QUIET)
    kwargs.setdefault("dynamic_ncols", True)
    return tqdm(iterable, **kwargs)
