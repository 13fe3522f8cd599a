"""Option dataclasses from mappings and YAML/JSON files (shared by ``train`` and ``retrofit``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import GQARetrofitError

T = TypeVar("T")


def read_config_file(path: str | Path, *, error: type[GQARetrofitError]) -> dict[str, Any]:
    """Read a YAML (``.yaml``/``.yml``) or JSON file holding a mapping of option values.

    Raises:
        error: the file is missing, cannot be parsed, or does not hold a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise error(f"config file {str(path)!r} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() in (".yaml", ".yml"):
            import yaml

            values = yaml.safe_load(text)
        else:
            values = json.loads(text)
    except Exception as err:  # yaml.YAMLError, json.JSONDecodeError
        raise error(f"config file {str(path)!r} cannot be parsed: {err}") from None
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise error(f"config file {str(path)!r} must hold a mapping of option names to values")
    return values


def options_from_mapping(
    cls: type[T],
    values: Mapping[str, Any],
    *,
    label: str,
    error: type[GQARetrofitError],
    list_fields: Iterable[str] = (),
) -> T:
    """Build the dataclass ``cls`` from a mapping whose keys use ``_`` or ``-``.

    Scalars given for ``list_fields`` are wrapped in a list.

    Raises:
        error: an unknown key (the message lists the valid ones).
    """
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    clean: dict[str, Any] = {}
    for key, value in values.items():
        name = str(key).replace("-", "_")
        if name not in known:
            raise error(f"unknown {label} option {key!r}; valid: {', '.join(sorted(known))}")
        clean[name] = value
    for name in list_fields:
        if isinstance(clean.get(name), (str, int)):
            clean[name] = [clean[name]]
    return cls(**clean)
