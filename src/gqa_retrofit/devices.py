"""The one device and dtype vocabulary of gqa-retrofit.

Every command that runs a model takes ``device`` and ``dtype`` in these words:

- devices: ``auto`` (the accelerator when one is present: CUDA, then Apple MPS, else the CPU),
  ``cpu``, ``cuda``, ``cuda:N``, ``mps``;
- dtypes: ``bf16`` (also ``bfloat16``), ``fp16`` (also ``float16``, ``half``), ``fp32`` (also
  ``float32``, ``float``), and ``auto``: the dtype the checkpoint was saved in
  (``config.json``'s ``dtype``/``torch_dtype``; ``fp32`` when it records none).

The names and their byte widths are plain data and import without torch (the estimator's CLI
stays torch-free); everything that touches a device imports torch inside the function. Bad
values raise :class:`~gqa_retrofit.errors.ConfigError` with one line naming the value and what
is valid here, so the CLI exits 2.

The CUDA and MPS branches (device counts, ``synchronize``, peak-memory counters) are written
against torch's public API and tested on CPU with the availability checks stubbed; the
package's test machine has no accelerator, so they have not run on one.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigError

#: Canonical dtype names, narrowest first.
DTYPE_NAMES: tuple[str, ...] = ("bf16", "fp16", "fp32")
#: What ``dtype=`` accepts: the canonical names plus ``auto`` (the checkpoint's dtype).
DTYPE_CHOICES: tuple[str, ...] = ("auto", *DTYPE_NAMES)
#: Every accepted spelling -> canonical name.
DTYPE_ALIASES: dict[str, str] = {
    "bf16": "bf16",
    "bfloat16": "bf16",
    "fp16": "fp16",
    "float16": "fp16",
    "half": "fp16",
    "fp32": "fp32",
    "float32": "fp32",
    "float": "fp32",
}
#: Bytes per element of each canonical dtype.
DTYPE_BYTES: dict[str, int] = {"bf16": 2, "fp16": 2, "fp32": 4}
#: torch attribute name of each canonical dtype.
TORCH_NAMES: dict[str, str] = {"bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}
#: Largest finite value of each dtype (IEEE half: 65504; bf16 shares fp32's exponent range).
DTYPE_MAX: dict[str, float] = {
    "bf16": 3.3895313892515355e38,
    "fp16": 65504.0,
    "fp32": 3.4028234663852886e38,
}
#: The half-precision compute dtypes (the widths autocast / ``--mixed-precision`` computes in).
HALF_DTYPES: tuple[str, ...] = ("bf16", "fp16")
#: Quantized storage formats the cost estimator also prices (bits per value), beyond the
#: dtypes a model computes in; the KV-cache formats and their scales are in ``cost.serving``.
QUANTIZED_BITS: dict[str, int] = {"fp8": 8, "int8": 8, "int4": 4}
#: Every weight dtype the cost estimator accepts, in the order its messages list them.
COST_DTYPES: tuple[str, ...] = ("fp32", "bf16", "fp16", *QUANTIZED_BITS)
#: What ``device=`` accepts (``cuda:N`` for any N as well).
DEVICE_CHOICES: tuple[str, ...] = ("auto", "cpu", "cuda", "cuda:N", "mps")
#: The help text of every ``--device`` flag.
DEVICE_HELP = "where models run: auto (the accelerator when present), cpu, cuda, cuda:N, mps"
#: The fallback of ``dtype="auto"`` when a checkpoint records no dtype (transformers' own).
DEFAULT_CHECKPOINT_DTYPE = "fp32"


def dtype_name(dtype: Any, *, allow_auto: bool = False) -> str:
    """The canonical name (``bf16``, ``fp16``, ``fp32``, or ``auto``) of ``dtype``.

    Args:
        dtype: any accepted spelling, or a ``torch.dtype``.
        allow_auto: accept ``auto`` (returned as is).

    Raises:
        ConfigError: ``dtype`` is not one of the accepted names.
    """
    text = str(dtype).removeprefix("torch.").strip().lower()
    if allow_auto and text == "auto":
        return "auto"
    name = DTYPE_ALIASES.get(text)
    if name is None:
        valid = ", ".join(DTYPE_CHOICES if allow_auto else DTYPE_NAMES)
        raise ConfigError(
            f"unknown dtype {dtype!r}: valid are {valid} (bfloat16, float16, float32 alike)"
        )
    return name


def dtype_bytes(dtype: Any) -> int:
    """Bytes per element of ``dtype`` (any accepted spelling).

    Raises:
        ConfigError: unknown dtype.
    """
    return DTYPE_BYTES[dtype_name(dtype)]


def dtype_bits(dtype: Any) -> int:
    """Bits per value of ``dtype``: a compute dtype (any accepted spelling) or a quantized
    storage format (``fp8``, ``int8``, ``int4``).

    Raises:
        ConfigError: unknown name (the message lists :data:`COST_DTYPES`).
    """
    text = dtype.strip().lower() if isinstance(dtype, str) else None
    if text in QUANTIZED_BITS:
        return QUANTIZED_BITS[text]
    name = DTYPE_ALIASES.get(text or "")
    if name is None:
        raise ConfigError(f"unknown dtype {dtype!r}; valid: {', '.join(COST_DTYPES)}")
    return 8 * DTYPE_BYTES[name]


def torch_dtype(dtype: Any) -> Any:
    """The ``torch.dtype`` of ``dtype`` (any accepted spelling except ``auto``).

    Raises:
        ConfigError: unknown dtype.
    """
    import torch

    return getattr(torch, TORCH_NAMES[dtype_name(dtype)])


def checkpoint_dtype(config: Any) -> str | None:
    """The dtype a checkpoint was saved in, from its config (object or dict); None if unrecorded.

    Reads ``dtype`` (transformers >= 4.56) or the older ``torch_dtype``. A recorded value outside
    the vocabulary (``float64``, a quantized type) is returned as None: callers then need an
    explicit dtype.
    """
    for key in ("dtype", "torch_dtype"):
        value = config.get(key) if isinstance(config, Mapping) else getattr(config, key, None)
        if value is None:
            continue
        name = DTYPE_ALIASES.get(str(value).removeprefix("torch.").lower())
        if name is not None:
            return name
    return None


def resolve_dtype(dtype: Any, *, checkpoint: str | None = None, device: Any | None = None) -> str:
    """The canonical dtype to run in: ``auto`` becomes the checkpoint's dtype.

    Args:
        dtype: an accepted name, ``auto`` or a ``torch.dtype``.
        checkpoint: the checkpoint's own dtype name (see :func:`checkpoint_dtype`); ``auto``
            falls back to :data:`DEFAULT_CHECKPOINT_DTYPE` when None.
        device: when given (a name or ``torch.device``), the dtype must compute there
            (:func:`check_dtype_on_device`).

    Raises:
        ConfigError: unknown dtype, or the device cannot compute in it.
    """
    name = dtype_name(dtype, allow_auto=True)
    if name == "auto":
        name = checkpoint or DEFAULT_CHECKPOINT_DTYPE
    if device is not None:
        check_dtype_on_device(name, device)
    return name


def _cuda_count() -> int:
    import torch

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def _mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def available_devices() -> list[str]:
    """The device names usable in this process, CPU first (``cuda:0``.. when CUDA is present)."""
    names = ["cpu"]
    count = _cuda_count()
    if count:
        names += ["cuda", *(f"cuda:{i}" for i in range(count))]
    if _mps_available():
        names.append("mps")
    return names


def resolve_device(device: Any = "auto") -> Any:
    """The ``torch.device`` for ``device``: ``auto``, ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    ``auto`` picks CUDA when present, else MPS, else the CPU. ``cuda`` means ``cuda:0``.

    Raises:
        ConfigError: unknown name, or the device is not available here (the message lists the
            devices that are).
    """
    import torch

    if isinstance(device, torch.device):
        text = str(device)
    else:
        text = str(device).strip().lower()
    if text == "auto":
        if _cuda_count():
            return torch.device("cuda", 0)
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    here = ", ".join(["auto", *available_devices()])
    kind, sep, index = text.partition(":")
    if kind not in ("cpu", "cuda", "mps") or (sep and (kind != "cuda" or not index.isdigit())):
        raise ConfigError(
            f"unknown device {device!r}: valid are {', '.join(DEVICE_CHOICES)} "
            f"(available here: {here})"
        )
    if kind == "cpu":
        return torch.device("cpu")
    if kind == "mps":
        if not _mps_available():
            raise ConfigError(
                f"device {device!r} is not available (no Apple MPS here): use one of {here}"
            )
        return torch.device("mps")
    count = _cuda_count()
    if count == 0:
        why = (
            "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device found"
        )
        raise ConfigError(f"device {device!r} is not available ({why}): use one of {here}")
    number = int(index) if sep else 0
    if number >= count:
        raise ConfigError(
            f"device {device!r} does not exist: {count} CUDA device(s) here, use one of {here}"
        )
    return torch.device("cuda", number)


@functools.cache
def _computes(device: str, dtype: str) -> str | None:
    """None when a small linear layer runs in ``dtype`` on ``device``, else torch's error."""
    import torch

    try:
        x = torch.ones(2, 4, dtype=torch_dtype(dtype), device=device)
        torch.nn.functional.linear(x, x).sum().item()
    except (RuntimeError, TypeError, NotImplementedError) as err:
        return str(err).splitlines()[0] if str(err) else type(err).__name__
    return None


def check_dtype_on_device(dtype: Any, device: Any) -> None:
    """Refuse a dtype the device cannot compute in (fp16 on CPUs without half kernels, bf16 on
    old GPUs), found by running one tiny matmul there once per process.

    Raises:
        ConfigError: names the dtype, the device and the dtypes that work there.
    """
    import torch

    name = dtype_name(dtype)
    where = str(device if isinstance(device, torch.device) else resolve_device(device))
    if _computes(where, name) is None:
        return
    working = [d for d in DTYPE_NAMES if _computes(where, d) is None]
    raise ConfigError(
        f"dtype {name!r} is not supported on device {where!r} ({_computes(where, name)}): use "
        + (", ".join(working) or "another device")
    )


def check_values_fit(tensors: Iterable[tuple[str, Any]], dtype: Any) -> None:
    """Refuse a dtype whose range cannot hold the checkpoint's values (e.g. fp16's 65504).

    Args:
        tensors: ``(name, tensor)`` pairs in the checkpoint's own dtype (a loaded model's
            ``named_parameters()``, or tensors read from the shards).
        dtype: the dtype they would be cast to.

    Raises:
        ConfigError: the first tensor holding a finite value beyond the dtype's largest one,
            naming it and the dtypes that hold it.
    """
    import torch

    name = dtype_name(dtype)
    limit = DTYPE_MAX[name]
    for tensor_name, tensor in tensors:
        if not tensor.is_floating_point() or tensor.numel() == 0 or tensor.is_meta:
            continue
        finite = tensor.detach()
        peak = float(finite.abs().masked_fill(~torch.isfinite(finite), 0).max())
        if peak > limit:
            holds = [d for d in DTYPE_NAMES if DTYPE_MAX[d] >= peak]
            raise ConfigError(
                f"dtype {name!r} cannot hold the checkpoint's values: {tensor_name} reaches "
                f"{peak:.6g}, above {name}'s largest {limit:.6g}; use " + ", ".join(holds)
            )


def check_cast_finite(
    tensors: Iterable[tuple[str, Any]], dtype: Any, *, source: str | None
) -> None:
    """After loading a wider checkpoint in fp16, refuse it when the cast overflowed.

    Loading casts as it reads (no second copy of the weights), so the range check happens on
    the result: a value beyond fp16's 65504 has become infinite. Only fp16 is narrower in range
    than the checkpoint dtypes, so nothing is scanned for other targets or an fp16 source.

    Args:
        tensors: ``(name, tensor)`` pairs after the cast (``model.named_parameters()``).
        dtype: the dtype loaded in.
        source: the checkpoint's own dtype name (None: unrecorded).

    Raises:
        ConfigError: the first tensor that holds a non-finite value, naming it and the dtypes
            with room for it.
    """
    import torch

    name = dtype_name(dtype)
    if name != "fp16" or source == "fp16":
        return
    for tensor_name, tensor in tensors:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor.detach()).all()):
            raise ConfigError(
                f"dtype 'fp16' cannot hold the checkpoint's values: {tensor_name} overflows "
                f"fp16's largest {DTYPE_MAX['fp16']:.6g} ({source or 'unrecorded'} checkpoint); "
                "use bf16, fp32"
            )


def synchronize(device: Any) -> None:
    """Wait for queued work on ``device`` (CUDA, MPS); nothing to wait for on the CPU.

    Timings of accelerator work are only true after this: kernels run asynchronously.
    """
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.synchronize(device)
    elif kind == "mps":
        torch.mps.synchronize()


def reset_peak_memory(device: Any) -> None:
    """Restart the device's peak-allocated-memory counter (CUDA; a no-op elsewhere)."""
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_bytes(device: Any) -> int | None:
    """Peak bytes allocated on ``device`` since the last reset (CUDA); current bytes on MPS
    (it keeps no peak); None on the CPU."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    if kind == "mps":
        return int(torch.mps.current_allocated_memory())
    return None


def empty_cache(device: Any) -> None:
    """Return cached blocks of freed tensors to the device (CUDA, MPS); a no-op on the CPU."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        torch.cuda.empty_cache()
    elif kind == "mps":
        torch.mps.empty_cache()
