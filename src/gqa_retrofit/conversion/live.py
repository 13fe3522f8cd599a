"""Decoupled-head GQA on a live model: swap each layer's attention module.

:func:`patch_model` builds the config of the target geometry with
:func:`~gqa_retrofit.patching.config.patch_config`, and for every layer splits the attention
tensors into canonical form (:mod:`gqa_retrofit.arch.layout`), pools them with a method of the
shared registry (:mod:`gqa_retrofit.conversion.pooling`), merges them into a new attention module
of the target class, and assigns it in place of the old one. Non-attention modules are untouched.
:func:`unpatch` puts the original modules (and config and class) back.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .._progress import progress
from ..arch.geometry import Geometry
from ..arch.layout import (
    attention_geometry,
    attention_prefix,
    attention_tensor_names,
    merge_attention,
    split_attention,
)
from ..errors import ConfigError
from ..patching.config import family_of, patch_config, target_geometry
from ..patching.custom_types import CUSTOM_TYPES, custom_classes
from .pooling import HeadTarget, get_pooling

RANDOM_INIT = "random"
_MODELS = "gqa_retrofit.patching.models"


@dataclass
class PatchReport:
    """What :func:`patch_model` changed (and what :func:`unpatch` needs to undo it)."""

    model_type_before: str
    model_type_after: str
    before: Geometry
    after: Geometry
    init: str
    modules: list[str]
    records: list[dict[str, Any]] = field(default_factory=list)
    _originals: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    _installed: dict[str, nn.Module] = field(default_factory=dict, repr=False)
    _config: Any = field(default=None, repr=False)
    _class: type | None = field(default=None, repr=False)
    _rotary: dict[str, nn.Module] = field(default_factory=dict, repr=False)

    @property
    def changed(self) -> bool:
        return self.before != self.after or self.model_type_before != self.model_type_after

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary."""

        return {
            "model_type_before": self.model_type_before,
            "model_type_after": self.model_type_after,
            "before": self.before.heads_dict(),
            "after": self.after.heads_dict(),
            "init": self.init,
            "modules": list(self.modules),
            "records": list(self.records),
        }


def _refuse_wrapped(model: Any) -> None:
    if getattr(model, "peft_config", None) is not None or any(
        hasattr(m, "base_layer") for m in model.modules()
    ):
        raise ConfigError(
            "model is wrapped by peft: merge the adapters first "
            "(model = model.merge_and_unload()), then patch"
        )
    config = getattr(model, "config", None)
    if (
        getattr(model, "is_quantized", False)
        or getattr(model, "hf_quantizer", None) is not None
        or getattr(config, "quantization_config", None) is not None
    ):
        raise ConfigError(
            "model is quantized: patch the unquantized model (load it in float precision), "
            "then quantize the result"
        )


def _attention_path(model: nn.Module, spec: Any, layer: int) -> str:
    path = attention_prefix(spec, layer)[:-1]
    try:
        model.get_submodule(path)
        return path
    except AttributeError:
        # a base model (e.g. LlamaModel) lacks the causal-LM prefix ("model.", "transformer.")
        stripped = path.split(".", 1)[1]
        model.get_submodule(stripped)
        return stripped


def _set_submodule(model: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    setattr(parent, name, module)


def _new_attention(old: nn.Module, config: Any, layer: int) -> nn.Module:
    """A fresh attention module of ``config``'s geometry: the custom type's attention class
    where it has one, else the class of ``old`` (native types read the geometry from config)."""
    attn_class: type = type(old)
    if config.model_type in CUSTOM_TYPES:
        module = importlib.import_module(f"{_MODELS}.modeling_{config.model_type}")
        attn_class = next(
            (cls for name, cls in vars(module).items() if name.endswith("GQAAttention")),
            attn_class,
        )
    return attn_class(config, layer_idx=layer)


def _rotary_modules(model: nn.Module) -> dict[str, nn.Module]:
    return {
        name: m
        for name, m in model.named_modules()
        if name.endswith("rotary_emb") and hasattr(m, "inv_freq")
    }


def _replace_config_refs(model: nn.Module, old: Any, new: Any) -> None:
    for module in model.modules():
        if getattr(module, "config", None) is old:
            module.config = new


def patch_model(
    model: Any,
    *,
    heads: int | None = None,
    kv_heads: int | None = None,
    head_dim: int | None = None,
    init: str = "mean",
) -> PatchReport:
    """Turn ``model``'s attention into decoupled-head GQA in place.

    Each layer's attention module is replaced by one of the target geometry, initialised from
    the old weights through the pooling method ``init`` (``"mean"``: KV heads averaged per
    contiguous group, or repeated when growing). ``init="random"`` initialises the new modules
    like a fresh model instead (for any heads/head_dim change). Custom families (gpt2, gpt_neox,
    opt, falcon) become their ``<family>_gqa`` type: ``model.config`` and ``type(model)`` change.

    Args:
        model: a transformers causal LM (or base model) of a supported family, in memory.
        heads: query heads ``n_h`` (unset: keep).
        kv_heads: KV heads ``n_kv`` (unset: keep).
        head_dim: head size ``d_h`` (unset: keep).
        init: a pooling method name (see ``pooling_methods()``) or ``"random"``.

    Returns:
        A :class:`PatchReport`; pass it to :func:`unpatch` to restore the original modules.

    Raises:
        UnsupportedFamilyError: the family cannot be patched.
        ConfigError: bad geometry, unknown ``init``, a method that cannot produce the
            geometry, a quantized or peft-wrapped model.
    """
    _refuse_wrapped(model)
    old_config = model.config
    spec = family_of(old_config)
    before = attention_geometry(spec, old_config)
    after = target_geometry(spec, old_config, heads=heads, kv_heads=kv_heads, head_dim=head_dim)
    method = _init_method(init, before, after)
    new_config = _target_config(spec, old_config, after)
    new_spec = family_of(new_config)
    report = PatchReport(
        model_type_before=old_config.model_type,
        model_type_after=new_config.model_type,
        before=before,
        after=after,
        init=init,
        modules=[],
        _config=old_config,
        _class=type(model),
    )
    names = attention_tensor_names(spec, old_config)
    target_names = attention_tensor_names(new_spec, new_config)
    layers = old_config.num_hidden_layers
    for layer in progress(range(layers), desc="patching attention", unit="layer", leave=False):
        path = _attention_path(model, spec, layer)
        old = model.get_submodule(path)
        reference = next(iter(old.parameters()))
        new = _new_attention(old, new_config, layer)
        new.to(device=reference.device, dtype=reference.dtype)
        if method is None:
            for module in new.modules():
                model._init_weights(module)
        else:
            split = (spec, old_config, names)
            merge = (new_spec, new_config, target_names)
            record = _load_pooled(new, old, path, method, after, split, merge)
            report.records.append({"layer": layer, **record})
        new.train(old.training)
        report._originals[path] = old
        report._installed[path] = new
        report.modules.append(path)
    _install(model, report, new_config)
    return report


def _init_method(init: str, before: Geometry, after: Geometry) -> Any:
    """The pooling method of ``init`` (None for random init), refused where it cannot work."""
    method = None if init == RANDOM_INIT else get_pooling(init)
    if method is not None and method.needs_calibration:
        raise ConfigError(
            f"pooling method {init!r} needs calibration data: use the converter "
            "(gqa-retrofit convert) for it"
        )
    if method is not None and after.head_dim != before.head_dim:
        raise ConfigError(
            f"init={init!r} cannot change head_dim {before.head_dim} -> {after.head_dim}; "
            "use init='random' (fresh projections) for a new head size"
        )
    return method


def _target_config(spec: Any, old_config: Any, after: Geometry) -> Any:
    """The patched config; a fallback family whose equivalent type is native is refused."""
    new_config = patch_config(
        old_config, heads=after.heads, kv_heads=after.kv_heads, head_dim=after.head_dim
    )
    new_config._attn_implementation = old_config._attn_implementation
    if (
        spec.decoupled == "fallback"
        and new_config.model_type != old_config.model_type
        and new_config.model_type not in CUSTOM_TYPES
    ):
        raise ConfigError(
            f"{old_config.model_type} cannot hold heads={after.heads} in memory "
            f"(hidden {after.hidden} % heads != 0); use patch_config/convert, which write a "
            f"{new_config.model_type} checkpoint"
        )
    return new_config


def _load_pooled(
    new: nn.Module,
    old: nn.Module,
    path: str,
    method: Any,
    after: Geometry,
    split: tuple[Any, Any, list[str]],
    merge: tuple[Any, Any, list[str]],
) -> dict[str, Any]:
    """Pool ``old``'s attention into ``new`` (in place); returns the method's record.

    ``split`` and ``merge`` are ``(spec, config, tensor names)`` of the source and the target.
    """
    spec, config, names = split
    new_spec, new_config, target_names = merge
    old_state = old.state_dict()
    weights = split_attention(spec, config, {n: old_state[n] for n in names})
    pooled = method.fn(weights, HeadTarget(kv_heads=after.kv_heads, heads=after.heads))
    merged = merge_attention(new_spec, new_config, pooled.weights)
    new_state = new.state_dict()
    extras = {k: v for k, v in old_state.items() if k not in names and k in new_state}
    for key, value in extras.items():
        if new_state[key].shape != value.shape:
            # e.g. olmo2's k_norm spans all KV heads: no pooling method covers it
            raise ConfigError(
                f"{path}.{key} has shape {tuple(value.shape)} tied to the head count; "
                f"init={method.name!r} cannot carry it to {tuple(new_state[key].shape)}"
            )
    missing = set(target_names) - set(merged)
    if missing:
        raise ConfigError(f"pooled weights lack {sorted(missing)} for {path}")
    with torch.no_grad():
        new.load_state_dict({**extras, **merged}, strict=False)
    return pooled.record


def _install(model: Any, report: PatchReport, new_config: Any) -> None:
    """Swap the new modules, rotary embeddings, config and class into ``model``."""
    old_config = report._config
    for path, new in report._installed.items():
        _set_submodule(model, path, new)
    if report.after.head_dim != report.before.head_dim:
        for name, rotary in _rotary_modules(model).items():
            device = next(rotary.buffers()).device
            rebuilt = type(rotary)(config=new_config).to(device)
            report._rotary[name] = rotary
            _set_submodule(model, name, rebuilt)
    _replace_config_refs(model, old_config, new_config)
    model.config = new_config
    if new_config.model_type in CUSTOM_TYPES and new_config.model_type != old_config.model_type:
        _, model_class = custom_classes(new_config.model_type)
        if isinstance(model, model_class.__mro__[1]):
            model.__class__ = model_class


def unpatch(model: Any, report: PatchReport) -> None:
    """Restore the modules, config and class :func:`patch_model` replaced.

    Raises:
        ConfigError: the model's attention modules are no longer the ones the patch installed
            (e.g. it was patched again or reloaded), so the originals cannot be put back safely.
    """
    for path, installed in report._installed.items():
        if model.get_submodule(path) is not installed:
            raise ConfigError(
                f"cannot unpatch: {path} is not the module patch_model installed "
                "(patched again or reloaded since)"
            )
    for path, original in report._originals.items():
        _set_submodule(model, path, original)
    for name, rotary in report._rotary.items():
        _set_submodule(model, name, rotary)
    _replace_config_refs(model, model.config, report._config)
    model.config = report._config
    if report._class is not None:
        model.__class__ = report._class
    report._installed.clear()
