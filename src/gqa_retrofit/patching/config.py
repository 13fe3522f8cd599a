"""Decoupled-head GQA configs: ``n_h``, ``n_kv`` and ``d_h`` chosen freely.

:func:`patch_config` returns a new config of the same family expressing the requested geometry:

- native families keep their own ``model_type`` (vanilla transformers loads them);
- "fallback" families whose config class rejects ``hidden % n_h != 0`` (llama) map to a native
  type with the same weight layout (``spec.decoupled_type``: llama -> mistral, with its sliding
  window switched off), when the source uses nothing the target lacks
  (``FamilySpec.fallback_requires``);
- "custom" families (gpt2, gpt_neox, opt, falcon) map to this package's ``<family>_gqa`` types.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

from huggingface_hub.errors import (
    StrictDataclassClassValidationError,
    StrictDataclassFieldValidationError,
)

from ..arch import FamilySpec, get_family, supported_families
from ..arch.geometry import Geometry
from ..arch.layout import attention_geometry
from ..errors import ConfigError, UnsupportedFamilyError
from .custom_types import register_custom_types

# what transformers raises for a config it rejects (strict-dataclass errors are not ValueErrors)
_VALIDATION_ERRORS: tuple[type[Exception], ...] = (
    ValueError,
    TypeError,
    StrictDataclassClassValidationError,
    StrictDataclassFieldValidationError,
)


def patchable_families() -> list[str]:
    """Model types :func:`patch_config` and ``patch_model`` accept, sorted."""
    return [t for t in supported_families() if get_family(t).supports_conversion]


def family_of(config: Any) -> FamilySpec:
    """The :class:`FamilySpec` of ``config.model_type``, checked to support patching.

    Raises:
        UnsupportedFamilyError: no family entry, or the family cannot be patched.
    """
    model_type = getattr(config, "model_type", None)
    try:
        spec = get_family(str(model_type))
    except UnsupportedFamilyError:
        spec = None
    if spec is None or not spec.supports_conversion:
        raise UnsupportedFamilyError(
            f"model type {model_type!r} cannot be patched; supported: "
            + ", ".join(patchable_families())
        )
    return spec


def target_geometry(
    spec: FamilySpec,
    config: Any,
    *,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
) -> Geometry:
    """The requested geometry (unset values keep the source's), validated.

    Raises:
        ConfigError: a value is not a positive integer, ``heads % kv_heads != 0``, or
            ``head_dim`` (times a partial rotary factor) is odd with rotary embeddings.
    """
    source = attention_geometry(spec, config)
    for name, value in (("heads", heads), ("kv_heads", kv_heads), ("head_dim", head_dim)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if value is not None and value <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {value}")
    new_heads = source.heads if heads is None else heads
    if kv_heads is None:
        # keep the source's KV heads when they still divide; else stay MHA-like per group
        kv_heads = source.kv_heads if new_heads % source.kv_heads == 0 else new_heads
    new_head_dim = source.head_dim if head_dim is None else head_dim
    if new_heads % kv_heads:
        divisors = [k for k in range(1, new_heads + 1) if new_heads % k == 0]
        raise ConfigError(
            f"heads={new_heads} is not divisible by kv_heads={kv_heads}; valid kv_heads: "
            + ", ".join(map(str, divisors))
        )
    if spec.rope:
        factor = _partial_rotary_factor(config)
        rotary = int(new_head_dim * factor)
        if rotary % 2:
            detail = "" if factor == 1.0 else f" (times partial_rotary_factor {factor} = {rotary})"
            raise ConfigError(
                f"head_dim={new_head_dim}{detail} must be even with rotary embeddings "
                f"({spec.model_type})"
            )
    return dataclasses.replace(source, heads=new_heads, kv_heads=kv_heads, head_dim=new_head_dim)


def _partial_rotary_factor(config: Any) -> float:
    params = getattr(config, "rope_parameters", None)
    if isinstance(params, dict) and "partial_rotary_factor" in params:
        return float(params["partial_rotary_factor"])
    return float(getattr(config, "partial_rotary_factor", None) or 1.0)


def _geometry_fields(spec: FamilySpec, config_dict: dict[str, Any]) -> tuple[str, str]:
    """Config keys holding the query-head and KV-head counts for ``spec``."""
    heads_key = next((k for k in spec.heads_keys if k in config_dict), spec.heads_keys[0])
    kv_key = next((k for k in spec.kv_heads_keys if k in config_dict), spec.kv_heads_keys[0])
    return heads_key, kv_key


def _build(model_type: str, values: dict[str, Any]) -> Any:
    from transformers import AutoConfig

    values = {k: v for k, v in values.items() if k not in ("model_type", "transformers_version")}
    return AutoConfig.for_model(model_type, **values)


def _describe(exc: Exception) -> str:
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


def patch_config(
    config: Any,
    *,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
) -> Any:
    """A new config describing the decoupled-head GQA variant of ``config``.

    Unset values keep the source's. The input is never mutated. See the module docstring for
    which ``model_type`` the result has.

    Args:
        config: a transformers ``PretrainedConfig`` of a supported family.
        heads: query heads ``n_h``.
        kv_heads: KV heads ``n_kv`` (must divide ``heads``).
        head_dim: head size ``d_h`` (``n_h * d_h`` need not equal the hidden size).

    Raises:
        UnsupportedFamilyError: the family cannot be patched (message lists those that can).
        ConfigError: the geometry is invalid or the family cannot express it.
    """
    spec = family_of(config)
    register_custom_types()
    geo = target_geometry(spec, config, heads=heads, kv_heads=kv_heads, head_dim=head_dim)
    values = copy.deepcopy(config.to_dict())
    if spec.decoupled == "custom":
        return _custom_config(spec, values, geo)
    heads_key, kv_key = _geometry_fields(spec, values)
    values.update({heads_key: geo.heads, kv_key: geo.kv_heads, "head_dim": geo.head_dim})
    try:
        return _build(spec.model_type, values)
    except _VALIDATION_ERRORS as exc:
        native_error = _describe(exc)
    if spec.decoupled != "fallback" or spec.decoupled_type is None:
        raise ConfigError(
            f"{spec.model_type} cannot express heads={geo.heads} kv_heads={geo.kv_heads} "
            f"head_dim={geo.head_dim}: {native_error}"
        )
    return _fallback_config(spec, values, native_error)


def _custom_config(spec: FamilySpec, values: dict[str, Any], geo: Geometry) -> Any:
    target = spec.decoupled_type
    assert target is not None  # custom families name their type in the family table
    target_spec = get_family(target)
    values.pop("architectures", None)
    for key in (*spec.kv_heads_keys, *target_spec.kv_heads_keys):
        values.pop(key, None)
    heads_key, kv_key = _geometry_fields(target_spec, values)
    values.update({heads_key: geo.heads, kv_key: geo.kv_heads, "head_dim": geo.head_dim})
    if values.get("alibi"):
        raise ConfigError(f"{spec.model_type} with alibi=True is not supported; rotary only")
    try:
        return _build(target, values)
    except _VALIDATION_ERRORS as exc:
        raise ConfigError(f"{target} rejects the geometry: {_describe(exc)}") from None


def equivalent_config(config: Any) -> Any:
    """The same model expressed as its family's equivalent type (llama -> mistral).

    Used where the family's own config class rejects a geometry; exposed so the equivalence
    can be checked on a geometry both accept.

    Raises:
        ConfigError: the family has no equivalent type or uses a feature the type lacks.
    """
    spec = family_of(config)
    register_custom_types()
    if spec.decoupled != "fallback" or spec.decoupled_type is None:
        raise ConfigError(f"{spec.model_type} has no equivalent type")
    return _fallback_config(spec, copy.deepcopy(config.to_dict()), "requested")


def _fallback_config(spec: FamilySpec, values: dict[str, Any], native_error: str) -> Any:
    target = spec.decoupled_type
    for key, wanted in spec.fallback_requires.items():
        if key in values and values[key] != wanted:
            raise ConfigError(
                f"{spec.model_type} cannot express this geometry ({native_error}) and its "
                f"equivalent {target} lacks {key}={values[key]!r}"
            )
        values.pop(key, None)
    values.update(spec.fallback_set)
    values.pop("architectures", None)
    assert target is not None
    try:
        return _build(target, values)
    except _VALIDATION_ERRORS as exc:
        raise ConfigError(f"{target} rejects the geometry: {_describe(exc)}") from None
