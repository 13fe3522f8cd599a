"""Lazy re-exports: a package names what it offers without importing it until first use.

``import gqa_retrofit`` and the CLI parser stay cheap (no torch) while ``gqa_retrofit.train`` or
``gqa_retrofit.data.sample_windows`` still work: the package's ``__getattr__`` imports the
defining module on first access.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    package: str, exports: Mapping[str, str], *, cache: dict[str, Any] | None = None
) -> Callable[[str], Any]:
    """A module-level ``__getattr__`` for ``package`` that imports ``exports[name]`` on use.

    Args:
        package: the package's ``__name__``.
        exports: exported name -> defining module, relative to ``package`` (``"windows"``) or
            absolute (``"gqa_retrofit.cost"``).
        cache: the package's ``globals()``, to keep each name once imported.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        absolute = module if module.startswith("gqa_retrofit.") else f"{package}.{module}"
        value = getattr(importlib.import_module(absolute), name)
        if cache is not None:
            cache[name] = value
        return value

    return __getattr__
