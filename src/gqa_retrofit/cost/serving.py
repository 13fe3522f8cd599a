"""Serving assumptions: KV-cache dtypes and the per-device KV of tensor / decode-context
parallelism (vLLM's rules).

KV dtypes (``--kv-dtype``): floating-point formats cost their bit width; the integer formats
are group-quantized with one fp16 scale per 32 values of each cached vector (llama.cpp's
``q8_0`` / ``q4_0`` layout: 8.5 and 4.5 bits per value), and that scale overhead is counted.
fp8 KV caches (vLLM ``fp8``/``fp8_e4m3``/``fp8_e5m2``) use per-tensor scales: no per-value
overhead.

Tensor parallelism (vLLM): query heads and KV heads are split over ``tp`` devices. When ``tp``
exceeds the KV head count ``n_kv`` each device still needs one KV head, so the KV heads are
replicated ``tp / n_kv`` times (an MLA latent is one shared "head": replicated ``tp`` times).
Decode context parallelism (``-dcp M``) reuses those replicas to split the cached tokens
``M`` ways, so per-device KV is divided back by ``M`` (``M`` must divide ``tp`` and cannot
exceed the replication factor). Fixed-size recurrent states are split over their heads.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..devices import DTYPE_ALIASES, DTYPE_NAMES
from ..errors import ConfigError
from .layer_plan import LayerCache

_SCALE_GROUP = 32
_SCALE_BYTES = 2  # one fp16 scale per group


@dataclass(frozen=True)
class KVDtype:
    """A KV-cache storage format."""

    name: str
    bits: int
    group: int = 0  # values sharing one scale (0: per-tensor scales, not counted)
    scale_bytes: int = 0
    description: str = ""

    def vector_bytes(self, length: int) -> int:
        """Bytes of one cached vector of ``length`` values (scales included)."""
        data = -(-length * self.bits // 8)
        if not self.group:
            return data
        return data + -(-length // self.group) * self.scale_bytes


_FORMATS = [
    KVDtype("fp32", 32, description="float32"),
    KVDtype("bf16", 16, description="bfloat16"),
    KVDtype("fp16", 16, description="float16"),
    KVDtype("fp8", 8, description="float8 e4m3 (vLLM 'fp8'), per-tensor scale"),
    KVDtype("fp8_e4m3", 8, description="float8 e4m3, per-tensor scale"),
    KVDtype("fp8_e5m2", 8, description="float8 e5m2, no scale"),
    KVDtype(
        "int8",
        8,
        _SCALE_GROUP,
        _SCALE_BYTES,
        "8-bit integers + one fp16 scale per 32 values (q8_0 layout, 8.5 bits/value)",
    ),
    KVDtype(
        "int4",
        4,
        _SCALE_GROUP,
        _SCALE_BYTES,
        "4-bit integers + one fp16 scale per 32 values (q4_0 layout, 4.5 bits/value)",
    ),
]
KV_DTYPES: dict[str, KVDtype] = {f.name: f for f in _FORMATS}


def kv_dtype(name: str) -> KVDtype:
    """The :class:`KVDtype` called ``name`` (aliases: bfloat16, float16, float32, half).

    Raises:
        ConfigError: unknown name (the message lists the valid ones).
    """
    key = name.lower() if isinstance(name, str) else name
    key = DTYPE_ALIASES.get(key, key)
    if key not in KV_DTYPES:
        raise ConfigError(f"unknown KV dtype {name!r}; valid: {', '.join(KV_DTYPES)}")
    return KV_DTYPES[key]


def activation_dtype(name: str) -> KVDtype:
    """The dtype fixed-size conv states are cached in: the given dtype when it is a 16/32-bit
    float, else bf16 (quantized weights still compute in bf16)."""
    dtype = kv_dtype(name)
    return dtype if dtype.name in DTYPE_NAMES else KV_DTYPES["bf16"]


@dataclass(frozen=True)
class Parallelism:
    """Tensor parallel degree ``tp`` and decode context parallel degree ``dcp``."""

    tp: int = 1
    dcp: int = 1

    def __post_init__(self) -> None:
        for name, value in (("tp", self.tp), ("dcp", self.dcp)):
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"--{name} must be a positive integer, got {value!r}")
        if self.tp % self.dcp:
            raise ConfigError(
                f"--dcp {self.dcp} must divide --tp {self.tp} (vLLM splits the TP group); "
                "valid: " + ", ".join(str(k) for k in range(1, self.tp + 1) if self.tp % k == 0)
            )


def kv_replicas(kv_heads: int, tp: int) -> int:
    """Copies of each KV head across ``tp`` devices: ``tp / n_kv`` when ``tp > n_kv``."""
    return tp // kv_heads if tp > kv_heads else 1


def check_layer(layer: LayerCache, par: Parallelism, index: int) -> None:
    """Raises:
    ConfigError: the layer's heads cannot be split ``tp`` ways as vLLM requires, or ``dcp``
        exceeds the KV replication it reuses."""
    tp = par.tp
    if layer.heads and layer.heads % tp:
        raise ConfigError(
            f"--tp {tp} does not divide the {layer.heads} "
            f"{'attention' if layer.kv_heads else 'state'} heads of layer {index}; valid: "
            + ", ".join(str(k) for k in range(1, layer.heads + 1) if layer.heads % k == 0)
        )
    n_kv = layer.kv_heads
    if not n_kv:
        return
    if tp > n_kv and tp % n_kv:
        raise ConfigError(
            f"--tp {tp} is neither a divisor nor a multiple of the {n_kv} KV heads of layer "
            f"{index} (vLLM replicates KV heads tp / n_kv times)"
        )
    if tp <= n_kv and n_kv % tp:
        raise ConfigError(f"--tp {tp} does not divide the {n_kv} KV heads of layer {index}")
    if par.dcp > kv_replicas(n_kv, tp):
        raise ConfigError(
            f"--dcp {par.dcp} exceeds the KV replication of layer {index} "
            f"({n_kv} KV heads at --tp {tp}: {kv_replicas(n_kv, tp)} copies); DCP splits "
            "tokens across the replicas, so use --dcp <= tp / n_kv"
        )


def layer_kv_bytes_per_token(layer: LayerCache, dtype: KVDtype, tp: int = 1) -> int:
    """KV bytes one token adds to ``layer`` on one device at tensor parallel degree ``tp``."""
    total = sum(count * dtype.vector_bytes(length) for count, length in layer.kv_vectors)
    if not layer.kv_heads:
        return total
    # each device holds n_kv / tp heads, but at least one (the replicas)
    per_device_heads = max(1, layer.kv_heads // tp)
    return total * per_device_heads // layer.kv_heads


def layer_state_bytes(layer: LayerCache, act: KVDtype, tp: int = 1) -> int:
    """Fixed-size state bytes of ``layer`` on one device (split over its heads)."""
    total = act.vector_bytes(layer.state_values) if layer.state_values else 0
    total += 4 * layer.state_fp32_values
    if tp > 1 and layer.heads and not layer.kv_heads:
        return total // tp
    return total


def _attention_kv_heads(layers: Sequence[LayerCache]) -> list[int]:
    return [layer.kv_heads for layer in layers if layer.kv_heads]


def replication_warning(
    layers: list[LayerCache] | tuple[LayerCache, ...], tp: int, dcp: int
) -> str:
    """A one-line warning when KV heads are fewer than the TP degree and DCP does not use the
    replicas, else ``""``."""
    heads = _attention_kv_heads(layers)
    if not heads:
        return ""
    fewest = min(heads)
    replicas = kv_replicas(fewest, tp)
    if replicas <= 1 or dcp >= replicas:
        return ""
    return (
        f"{fewest} KV head(s) at --tp {tp}: vLLM replicates each KV head {replicas} times, so "
        f"per-device KV is {replicas}x what the head count suggests; use --dcp {replicas} "
        "(decode context parallel) or tp <= n_kv to keep the saving"
    )


def serving_dict(s: object, kv_dtype_name: str, tp: int, dcp: int) -> dict[str, object]:
    """The serving assumptions of a report (JSON): tp, dcp, KV format and replication."""
    from .layer_plan import cache_layers

    layers = cache_layers(s)  # type: ignore[arg-type]
    fmt = kv_dtype(kv_dtype_name)
    heads = _attention_kv_heads(layers)
    out: dict[str, object] = {
        "tp": tp,
        "dcp": dcp,
        "kv_dtype": fmt.name,
        "kv_dtype_format": fmt.description,
        "kv_bits_per_value": fmt.bits + (8 * fmt.scale_bytes / fmt.group if fmt.group else 0),
        "kv_replicas": kv_replicas(min(heads), tp) if heads else 1,
        "rule": "vLLM: KV heads replicated tp / n_kv times when tp > n_kv; dcp splits tokens",
    }
    warning = replication_warning(layers, tp, dcp)
    if warning:
        out["warning"] = warning
    return out


def uniform_layer(heads: int, kv_heads: int, head_dim: int) -> LayerCache:
    """The cache of one full-attention layer of ``heads``/``kv_heads`` heads of ``head_dim``
    (for geometries that exist only as numbers: recipe candidates, plan options)."""
    return LayerCache(
        kind="full",
        kv_vectors=((2 * kv_heads, head_dim),),
        attention_flops_per_key=4 * heads * head_dim,
        heads=heads,
        kv_heads=kv_heads,
    )


def serving_costs(
    *,
    layers: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    context: int,
    kv_dtype_name: str = "bf16",
    batch: int = 1,
    tp: int = 1,
    dcp: int = 1,
) -> dict[str, object]:
    """Per-device KV bytes of a uniform attention geometry at ``tp``/``dcp`` (JSON-ready):
    ``{"per_device_kv_cache_bytes", "kv_replicas"[, "warning"]}``, or ``{"error": ...}`` when
    vLLM cannot split these heads ``tp`` ways.

    Raises:
        ConfigError: ``tp``/``dcp`` not positive, ``dcp`` not dividing ``tp``, unknown dtype.
    """
    par = Parallelism(tp, dcp)
    fmt = kv_dtype(kv_dtype_name)
    layer = uniform_layer(heads, kv_heads, head_dim)
    try:
        check_layer(layer, par, 0)
    except ConfigError as err:
        return {"error": str(err).replace(" of layer 0", "")}
    tokens = -(-context // dcp)
    out: dict[str, object] = {
        "per_device_kv_cache_bytes": batch
        * layers
        * tokens
        * layer_kv_bytes_per_token(layer, fmt, tp),
        "kv_replicas": kv_replicas(kv_heads, tp),
    }
    warning = replication_warning([layer], tp, dcp)
    if warning:
        out["warning"] = warning
    return out
