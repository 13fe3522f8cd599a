"""Model-family knowledge as data: see :mod:`gqa_retrofit.arch.spec`."""

from __future__ import annotations

from ..errors import UnsupportedFamilyError
from .families import CUSTOM_TYPES, FAMILIES
from .spec import CustomType, DecoupledSupport, FamilySpec, QKVLayout


def supported_families() -> list[str]:
    """Model types with a family entry, sorted."""
    return sorted(FAMILIES)


def get_family(model_type: str) -> FamilySpec:
    """The :class:`FamilySpec` of ``model_type``.

    Raises:
        UnsupportedFamilyError: no entry for ``model_type``; the message lists supported ones.
    """
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise UnsupportedFamilyError(
            f"model type {model_type!r} is not supported; supported: "
            + ", ".join(supported_families())
        ) from None


__all__ = [
    "CUSTOM_TYPES",
    "FAMILIES",
    "CustomType",
    "DecoupledSupport",
    "FamilySpec",
    "QKVLayout",
    "get_family",
    "supported_families",
]
