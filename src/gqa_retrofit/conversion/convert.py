"""Convert a checkpoint to fewer KV (and optionally query) heads, streaming shard by shard.

:func:`convert_checkpoint` is what ``gqa-retrofit convert`` runs. The flow:

1. validate everything that can be validated before reading data: dtype, shard size, output
   location, family, head targets, method, calibration files, and every shard's header;
2. plan the output (names, shapes, dtypes, shard files) on meta tensors;
3. write into a temporary sibling of OUT, shard by shard: unchanged tensors are streamed from the
   source file to the output file in bounded chunks (raw bytes when the dtype is kept), and each
   decoder layer's attention is read, split into the canonical form, pooled by the chosen
   method, merged back into the family's layout and written;
4. copy tokenizer/generation files, write the ``gqa_retrofit.json`` manifest, rename into place.

Peak memory is about one layer's attention (in fp32) plus one copy chunk, independent of the
model and shard sizes. Data-aware methods add their calibration session (one layer plus the
calibration activations).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import shutil
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._fs import atomic_output_dir, check_replaceable_output
from .._options import check_int_argument
from .._progress import progress
from ..arch import get_family
from ..arch.canonical import AttentionWeights
from ..arch.geometry import Geometry
from ..arch.layout import (
    attention_geometry,
    attention_prefix,
    attention_tensor_names,
    merge_attention,
    split_attention,
)
from ..arch.spec import FamilySpec
from ..data import DataOptions, resolve_sources
from ..devices import DTYPE_ALIASES, DTYPE_NAMES, torch_dtype
from ..errors import ConfigError, ConversionError, DataError, UnsupportedFamilyError
from ..patching import patch_config
from ..patching.custom_types import CUSTOM_TYPES, custom_classes
from ..sources import CHECKPOINT_SIDE_FILES, check_hub_id, resolve_checkpoint_dir
from .manifest import (
    build_manifest,
    embedded_origin,
    hub_origin,
    hub_revision,
    record_output_files,
    source_fingerprint,
    source_label,
    write_manifest,
)
from .methods import DEFAULT_METHOD as DEFAULT_DATA_AWARE_METHOD
from .pooling import HeadTarget, PoolingMethod, PoolResult, check_target, get_pooling
from .resume import CalibrationResume, LayerProgress
from .streaming import (
    CheckpointReader,
    SafetensorsStreamWriter,
    ShardPlan,
    copy_tensor,
    disk_error,
    parse_shard_size,
    plan_shards,
    write_index,
)

# The method used when none is named: mean pooling without calibration data; the best
# data-aware method (chosen by measurement, see docs/convert.md) when calibration text is given.
DEFAULT_METHOD = "mean"
DEFAULT_CALIBRATED_METHOD = DEFAULT_DATA_AWARE_METHOD  # the one default, kept in conversion.methods
# 32 windows of 512 tokens. Measured on SmolLM2 3 -> 1 KV heads (docs/convert.md): Persuasion
# 74.3 and 31x better than mean pooling out of domain, converted in about a minute on 2 cores;
# 8,192 tokens: 79.2 and 29.6x in about 40 s.
DEFAULT_CALIBRATION_TOKENS = 16_384

# Small files that travel with the weights (tokenizer, generation settings, chat template).
SIDE_FILES = [name for name in CHECKPOINT_SIDE_FILES if name != "config.json"]


@dataclass
class ConversionReport:
    """What :func:`convert_checkpoint` did; ``to_dict()`` is what ``convert --json`` prints."""

    output: Path
    source: str
    model_type: str
    method: str
    heads_before: int
    kv_heads_before: int
    heads_after: int
    kv_heads_after: int
    head_dim: int
    layers: int
    files: dict[str, dict[str, int]]
    seconds: float
    manifest: dict[str, Any] = field(repr=False, default_factory=dict)

    @property
    def bytes_written(self) -> int:
        return sum(f["bytes"] for f in self.files.values())

    @property
    def tensors(self) -> int:
        return sum(f["tensors"] for f in self.files.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "output": str(self.output),
            "source": self.source,
            "model_type": self.model_type,
            "method": self.method,
            "heads": {"before": self.heads_before, "after": self.heads_after},
            "kv_heads": {"before": self.kv_heads_before, "after": self.kv_heads_after},
            "head_dim": self.head_dim,
            "layers": self.layers,
            "files": self.files,
            "tensors": self.tensors,
            "bytes": self.bytes_written,
            "seconds": round(self.seconds, 3),
        }


def _natural_key(name: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def _resolve_dtype(dtype: str) -> torch.dtype | None:
    """The output dtype: ``keep`` (None) or a name of :mod:`gqa_retrofit.devices`."""
    key = str(dtype).lower()
    if key == "keep":
        return None
    if key not in DTYPE_ALIASES:
        raise ConfigError(f"invalid dtype {dtype!r}; valid: keep, {', '.join(DTYPE_NAMES)}")
    return torch_dtype(key)


def _stored_dtype(source: torch.dtype, out_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype written for a tensor: ``out_dtype`` for floating-point tensors, else kept."""
    return out_dtype if out_dtype is not None and source.is_floating_point else source


def _meta_weights(like: AttentionWeights, heads: int, kv_heads: int) -> AttentionWeights:
    """Meta tensors of the target geometry with the same biases as ``like``."""
    d_h, d, dt = like.head_dim, like.hidden, like.q.dtype

    def meta(*shape: int) -> torch.Tensor:
        return torch.empty(shape, dtype=dt, device="meta")

    return AttentionWeights(
        q=meta(heads, d_h, d),
        k=meta(kv_heads, d_h, d),
        v=meta(kv_heads, d_h, d),
        o=meta(d, heads, d_h),
        q_bias=None if like.q_bias is None else meta(heads, d_h),
        k_bias=None if like.k_bias is None else meta(kv_heads, d_h),
        v_bias=None if like.v_bias is None else meta(kv_heads, d_h),
        o_bias=None if like.o_bias is None else meta(d),
    )


def _load_config(src_dir: Path) -> tuple[FamilySpec, Any]:
    try:
        raw = json.loads((src_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read config.json in {str(src_dir)!r}: {err}") from None
    model_type = raw.get("model_type") if isinstance(raw, dict) else None
    if not model_type:
        raise ConfigError(f"config.json in {str(src_dir)!r} has no model_type")
    spec = get_family(str(model_type))
    if not spec.supports_conversion:
        from ..arch import FAMILIES

        raise UnsupportedFamilyError(
            f"model type {model_type!r} cannot be converted; supported: "
            + ", ".join(sorted(k for k, s in FAMILIES.items() if s.supports_conversion))
        )
    from ..cost.config_reader import read_config

    read_config(raw)  # the fields as `estimate` checks them: 0 or "eight" heads, head_dim -1
    from transformers import AutoConfig

    return spec, AutoConfig.from_pretrained(src_dir)


def _save_config(config: Any, directory: Path) -> None:
    """``config.json``; for custom types also the defining code files and ``auto_map``.

    The custom ``<family>_gqa`` types then load anywhere with ``trust_remote_code=True``, and
    without it where gqa_retrofit is imported (it registers them with the Auto classes).
    """
    if config.model_type in CUSTOM_TYPES:
        from transformers.dynamic_module_utils import custom_object_save

        _, model_class = custom_classes(config.model_type)
        with torch.device("meta"):
            model = model_class(config)
        custom_object_save(model, directory, config=config)
    config.save_pretrained(directory)


def _calibration_specs(calibration: Any) -> list[str]:
    """The calibration sources (checked now, before any work), or the embedded training novels."""
    if calibration is None:
        from ..assets import default_corpus  # type: ignore[import-not-found,unused-ignore]

        return [str(p) for p in default_corpus().train]
    items = [calibration] if isinstance(calibration, (str, os.PathLike)) else list(calibration)
    if not items:
        raise DataError("calibration was given as an empty list: give files, globs or datasets")
    specs = [os.fspath(p) for p in items]
    resolve_sources(specs)
    return specs


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass
class _LayerPlan:
    source_names: dict[str, str]  # relative -> full name in the source
    output_names: dict[str, str]  # relative -> full name in the output
    output_shapes: dict[str, tuple[int, ...]]
    dtype: torch.dtype


class _AttentionConverter:
    """Converts one decoder layer's attention at a time, in layer order."""

    def __init__(
        self,
        spec: FamilySpec,
        config: Any,
        new_config: Any,
        reader: CheckpointReader,
        method: PoolingMethod,
        target: HeadTarget,
        out_dtype: torch.dtype | None,
        session: Any | None,
        resume: Any | None = None,
    ) -> None:
        self.spec, self.config, self.new_config = spec, config, new_config
        self.new_spec = get_family(str(new_config.model_type))
        self.reader, self.method, self.target = reader, method, target
        self.out_dtype, self.session, self.resume = out_dtype, session, resume
        self.records: list[dict[str, Any]] = []
        self.seconds = 0.0
        self.layers = (
            None
            if session is None
            else LayerProgress(
                session.num_layers, start=0 if resume is None else resume.start_layer
            )
        )

    def convert(self, layer: int, plan: _LayerPlan) -> dict[str, torch.Tensor]:
        # Weight-only methods touch one layer's small tensors: one thread is faster than waking
        # a pool for each tiny op (markedly so on a busy machine). Data-aware methods keep all.
        threads = 1 if self.session is None else torch.get_num_threads()
        with _torch_threads(threads):
            return self._convert(layer, plan)

    def _convert(self, layer: int, plan: _LayerPlan) -> dict[str, torch.Tensor]:
        start = time.perf_counter()
        if self.resume is not None:  # a calibrated conversion continued after an interruption
            saved = self.resume.saved(layer)
            if saved is not None:
                self.records.append(saved[1])
                return saved[0]
            self.resume.restore(self.session)
        tensors = {rel: self.reader.read(full) for rel, full in plan.source_names.items()}
        weights = split_attention(self.spec, self.config, tensors)
        if self.session is not None:  # data-aware methods get fp32; weight-only ones (mean)
            weights = weights.to(torch.float32)  # compute in fp32 internally, saving the casts

        calibration = self.session.layer(layer, weights) if self.session is not None else None
        result: PoolResult = self.method.fn(weights, self.target, calibration)
        if self.session is not None:
            self.session.advance(layer, result.weights)
        merged = merge_attention(self.new_spec, self.new_config, result.weights)
        dtype = self.out_dtype or plan.dtype
        out: dict[str, torch.Tensor] = {}
        for rel, full in plan.output_names.items():
            tensor = merged[rel].to(dtype).contiguous()
            if tuple(tensor.shape) != plan.output_shapes[rel]:
                raise ConversionError(
                    f"method {self.method.name!r} produced {full!r} of shape "
                    f"{tuple(tensor.shape)}, expected {plan.output_shapes[rel]}"
                )
            out[full] = tensor
        record = {"layer": layer, **result.record}
        self.records.append(record)
        if self.resume is not None:
            self.resume.layer_done(layer, out, record, self.session)
        if self.layers is not None:
            self.layers.done(layer, record)
        self.seconds += time.perf_counter() - start
        return out


@dataclass
class _Job:
    """A conversion, validated before any tensor data is read."""

    src_name: str  # as the user gave it (local path or Hub id)
    src_dir: Path  # the local directory (a Hub snapshot for Hub ids)
    spec: FamilySpec
    config: Any
    geo: Geometry
    new_config: Any
    target: HeadTarget
    pooling: PoolingMethod
    text_paths: list[str]
    calibration_tokens: int
    dtype: str
    out_dtype: torch.dtype | None
    max_shard_size: int | str
    revision: str | None
    base_model: str | None
    data_options: DataOptions | None
    token: str | bool | None = field(default=None, repr=False)  # never recorded
    device: Any = "auto"  # where calibration passes run

    @property
    def heads_after(self) -> int:
        return self.target.heads if self.target.heads is not None else self.geo.heads


def convert_checkpoint(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    kv_heads: int,
    heads: int | None = None,
    method: str | None = None,
    calibration: str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None = None,
    calibration_tokens: int = DEFAULT_CALIBRATION_TOKENS,
    dtype: str = "keep",
    device: Any = "auto",
    max_shard_size: int | str = "5GB",
    overwrite: bool = False,
    revision: str | None = None,
    token: str | bool | None = None,
    base_model: str | None = None,
    data_options: DataOptions | None = None,
) -> ConversionReport:
    """Rewrite ``src`` with ``kv_heads`` KV heads (and ``heads`` query heads) into ``out``.

    Args:
        src: local checkpoint directory or Hub id (only config, safetensors, index, tokenizer and
            generation files are downloaded).
        out: output directory; written to a temporary sibling and renamed when complete.
        kv_heads: KV heads after conversion; must divide the source's KV heads and the query
            heads.
        heads: query heads after conversion (None keeps them); needs a method that reduces them.
        method: pooling method name (see ``gqa_retrofit.conversion.pooling.pooling_methods``);
            default :data:`DEFAULT_METHOD`, or :data:`DEFAULT_CALIBRATED_METHOD` when
            ``calibration`` is given.
        calibration: calibration data for data-aware methods: files (.txt/.md, .jsonl/.json,
            .parquet), directories, globs, dataset repositories or Hub dataset ids, sampled
            across all of them (:mod:`gqa_retrofit.data`); default: the embedded corpus'
            training split when the method needs calibration.
        calibration_tokens: calibration token budget for data-aware methods.
        dtype: ``keep``, ``bf16``, ``fp16`` or ``fp32`` for the floating-point tensors written.
        device: where data-aware methods run their calibration forward passes, one decoder layer
            at a time (``auto``: the accelerator when present; ``cpu``, ``cuda``, ``cuda:N``,
            ``mps``). An interrupted calibrated conversion continues at the layer it reached
            when run again with the same arguments (:mod:`gqa_retrofit.conversion.resume`).
        max_shard_size: largest output shard (``"5GB"``, ``"500MB"`` or bytes).
        overwrite: replace an existing ``out`` (only an empty directory or an earlier output of
            gqa-retrofit).
        revision, token: Hub revision and token for Hub ids (the token is never recorded).
        base_model: the Hub id of the model ``src`` is a copy of, recorded in the manifest (and
            the card's ``base_model``). Default: ``src`` itself when it is a Hub id, the repo of
            a Hub cache snapshot, or the declared origin of the embedded model.
        data_options: text column, dataset config/split/revision and seed of the calibration
            data.

    Returns:
        A :class:`ConversionReport` (the manifest is also written to ``out/gqa_retrofit.json``).

    Raises:
        ConfigError: bad dtype, shard size, method, head targets or ``base_model``; an
            unknown or unavailable ``device``.
        UnsupportedFamilyError: the model family cannot be converted (lists the supported ones).
        ModelSourceError: ``src`` cannot be resolved.
        OutputExistsError: ``out`` exists without ``overwrite``, may not be replaced, overlaps
            ``src``, or another process is writing it.
        ConversionError: missing/truncated shards, tensors missing from the checkpoint, or a
            full disk (nothing is left at ``out``).
        DataError: calibration text missing or too short.
    """
    started = time.perf_counter()
    from ..devices import resolve_device

    resolve_device(device)  # an unknown or unavailable device fails before any work
    job = _validate(
        src,
        out,
        kv_heads=kv_heads,
        heads=heads,
        method=method,
        calibration=calibration,
        calibration_tokens=calibration_tokens,
        dtype=dtype,
        max_shard_size=max_shard_size,
        overwrite=overwrite,
        revision=revision,
        token=token,
        base_model=base_model,
        data_options=data_options,
    )
    with (
        CheckpointReader(job.src_dir) as reader,
        atomic_output_dir(out, overwrite=overwrite, source=job.src_dir) as tmp,
    ):
        job = dataclasses.replace(job, device=device)
        files, manifest = _write_output(job, reader, tmp, Path(out), started)
    return ConversionReport(
        output=Path(out),
        source=job.src_name,
        model_type=str(job.new_config.model_type),
        method=job.pooling.name,
        heads_before=job.geo.heads,
        kv_heads_before=job.geo.kv_heads,
        heads_after=job.heads_after,
        kv_heads_after=job.target.kv_heads,
        head_dim=job.geo.head_dim,
        layers=job.geo.layers,
        files={k: {"tensors": v["tensors"], "bytes": v["bytes"]} for k, v in files.items()},
        seconds=manifest["timings"]["total_seconds"],
        manifest=manifest,
    )


def _write_output(
    job: _Job, reader: CheckpointReader, tmp: Path, out: Path, started: float
) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """Write the whole output into ``tmp``: shards, index, config, side files, manifest."""
    timings: dict[str, float] = {}
    plan, layer_plans, owner, sources = _plan_output(
        job.spec, job.config, job.new_config, job.geo, reader, job.out_dtype, job.max_shard_size
    )
    calib_started = time.perf_counter()
    session = _calibration_session(job)
    resume = None
    if session is not None:
        resume = CalibrationResume(
            out,
            key={
                "source": source_fingerprint(job.src_dir, reader.shard_files)["digest"],
                "method": job.pooling.name,
                "heads": job.heads_after,
                "kv_heads": job.target.kv_heads,
                "calibration": session.fingerprint,
                "dtype": str(job.out_dtype),
            },
        )
    timings["calibration_setup_seconds"] = time.perf_counter() - calib_started
    converter = _AttentionConverter(
        job.spec,
        job.config,
        job.new_config,
        reader,
        job.pooling,
        job.target,
        job.out_dtype,
        session,
        resume,
    )
    timings["plan_seconds"] = time.perf_counter() - started
    files: dict[str, dict[str, Any]] = {}
    with _disk_errors(tmp):
        _write_shards(
            tmp, plan, reader, converter, layer_plans, owner, sources, job.out_dtype, files
        )
        write_index(tmp, plan)
        _save_config(job.new_config, tmp)
        for name in SIDE_FILES:
            if (job.src_dir / name).is_file():
                shutil.copyfile(job.src_dir / name, tmp / name)
        timings["attention_seconds"] = converter.seconds
        timings["total_seconds"] = time.perf_counter() - started
        manifest = _conversion_manifest(job, reader, session, converter.records, timings)
        manifest["source"]["name"] = source_label(job.src_name, out)
        record_output_files(tmp, manifest)
        write_manifest(tmp, manifest)
    if resume is not None:
        resume.finish()
    return files, manifest


def _validate(
    src: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    kv_heads: int,
    heads: int | None,
    method: str | None,
    calibration: Any,
    calibration_tokens: int,
    dtype: str,
    max_shard_size: int | str,
    overwrite: bool,
    revision: str | None,
    token: str | bool | None,
    base_model: str | None,
    data_options: DataOptions | None,
) -> _Job:
    """Every check that needs no tensor data, in the order a user fixes them."""
    _check_numbers(kv_heads=kv_heads, heads=heads, calibration_tokens=calibration_tokens)
    out_dtype = _resolve_dtype(dtype)
    parse_shard_size(max_shard_size)
    if base_model is not None:
        check_hub_id(base_model, what="base model")
    src_str = os.fspath(src)
    local_src = Path(src_str) if Path(src_str).exists() else None
    check_replaceable_output(out, source=local_src, overwrite=overwrite)
    src_dir = resolve_checkpoint_dir(src_str, revision=revision, token=token)
    check_replaceable_output(out, source=src_dir, overwrite=overwrite)

    spec, config = _load_config(src_dir)
    geo = attention_geometry(spec, config)
    new_heads = geo.heads if heads is None else int(heads)
    if kv_heads > geo.kv_heads:
        raise ConfigError(
            f"kv_heads={kv_heads} exceeds the source's {geo.kv_heads} KV heads; valid: "
            + ", ".join(str(k) for k in range(1, geo.kv_heads + 1) if geo.kv_heads % k == 0)
        )
    if new_heads > geo.heads:
        raise ConfigError(
            f"heads={new_heads} exceeds the source's {geo.heads} query heads; choose at most "
            f"{geo.heads}"
        )
    target = HeadTarget(kv_heads=int(kv_heads), heads=None if heads is None else new_heads)
    meta_src = AttentionWeights(
        *(
            torch.empty(s, device="meta")
            for s in (
                (geo.heads, geo.head_dim, geo.hidden),
                (geo.kv_heads, geo.head_dim, geo.hidden),
                (geo.kv_heads, geo.head_dim, geo.hidden),
                (geo.hidden, geo.heads, geo.head_dim),
            )
        )
    )
    check_target(meta_src, target)

    method_name = method or (
        DEFAULT_CALIBRATED_METHOD if calibration is not None else DEFAULT_METHOD
    )
    pooling = get_pooling(method_name)
    if calibration is not None and not pooling.needs_calibration:
        raise ConfigError(
            f"method {method_name!r} uses no calibration data: drop --calibration or choose a "
            "data-aware method"
        )
    text_paths = _calibration_specs(calibration) if pooling.needs_calibration else []

    new_config = patch_config(
        config, heads=new_heads if heads is not None else None, kv_heads=int(kv_heads)
    )
    if out_dtype is not None:
        new_config.dtype = out_dtype
    return _Job(
        src_name=src_str,
        src_dir=src_dir,
        spec=spec,
        config=config,
        geo=geo,
        new_config=new_config,
        target=target,
        pooling=pooling,
        text_paths=text_paths,
        calibration_tokens=calibration_tokens,
        dtype=dtype,
        out_dtype=out_dtype,
        max_shard_size=max_shard_size,
        revision=revision,
        base_model=base_model or hub_origin(src_str, src_dir),
        data_options=data_options,
        token=token,
    )


def _check_numbers(*, kv_heads: Any, heads: Any, calibration_tokens: Any) -> None:
    """The numeric arguments are positive integers (``heads`` may be None).

    Raises:
        ConfigError: names the argument, the bad value and what is valid.
    """
    check_int_argument("kv_heads", kv_heads)
    if heads is not None:
        check_int_argument("heads", heads)
    check_int_argument("calibration_tokens", calibration_tokens)


def _calibration_session(job: _Job) -> Any | None:
    """The calibration session of a data-aware method (None for weight-only methods)."""
    if not job.pooling.needs_calibration:
        return None
    from .calibration import (  # type: ignore[import-not-found,unused-ignore]
        CalibrationSession,
    )

    return CalibrationSession(
        job.src_dir,
        job.config,
        job.text_paths,
        tokens=job.calibration_tokens,
        dtype=torch.float32,
        data_options=job.data_options,
        data_token=job.token,
        device=job.device,
    )


@contextlib.contextmanager
def _disk_errors(directory: Path) -> Iterator[None]:
    """Turn a full disk while writing ``directory`` into the clear :class:`ConversionError`."""
    try:
        yield
    except OSError as err:
        name = Path(err.filename).name if isinstance(err.filename, str) else "the output"
        converted = disk_error(err, directory / name)
        if converted is not None:
            raise converted from None
        raise


def _conversion_manifest(
    job: _Job,
    reader: CheckpointReader,
    session: Any | None,
    records: list[dict[str, Any]],
    timings: dict[str, float],
) -> dict[str, Any]:
    """The manifest of ``job`` (the output files are recorded by :func:`record_output_files`)."""
    source = {
        "name": job.src_name,  # made relative to the output by the caller
        "base_model": job.base_model,
        "revision": hub_revision(job.src_dir) or job.revision,
        "fingerprint": source_fingerprint(job.src_dir, reader.shard_files),
        "model_type": job.spec.model_type,
        "bytes": reader.total_bytes,
        "tensors": len(reader.names()),
    }
    origin = embedded_origin(job.src_dir)
    if origin is not None:
        source["origin"] = origin
    manifest = build_manifest(
        source=source,
        method={
            "name": job.pooling.name,
            "needs_calibration": job.pooling.needs_calibration,
            "summary": job.pooling.summary,
            "reference": job.pooling.reference,
        },
        heads_before={
            "heads": job.geo.heads,
            "kv_heads": job.geo.kv_heads,
            "head_dim": job.geo.head_dim,
        },
        heads_after={
            "heads": job.heads_after,
            "kv_heads": job.target.kv_heads,
            "head_dim": job.geo.head_dim,
        },
        layers=records,
        files={},
        dtype=job.dtype,
        model_type=str(job.new_config.model_type),
        calibration=(
            {**session.data_record.to_dict(), "requested_tokens": job.calibration_tokens}
            if session is not None
            else None
        ),
        timings=timings,
    )
    if job.base_model:
        manifest["base_model"] = job.base_model
    return manifest


def _plan_output(
    spec: FamilySpec,
    config: Any,
    new_config: Any,
    geo: Geometry,
    reader: CheckpointReader,
    out_dtype: torch.dtype | None,
    max_shard_size: int | str,
) -> tuple[ShardPlan, dict[int, _LayerPlan], dict[str, int], dict[str, str]]:
    """Output names, shapes, dtypes and shard files, computed on meta tensors."""
    relative = attention_tensor_names(spec, config)
    layer_plans: dict[int, _LayerPlan] = {}
    owner: dict[str, int] = {}  # output attention tensor name -> layer
    replaced: set[str] = set()
    entries: list[tuple[str, tuple[int, ...], torch.dtype]] = []
    new_spec = get_family(str(new_config.model_type))  # e.g. gpt2 -> gpt2_gqa
    new_geo = attention_geometry(new_spec, new_config)
    for layer in range(geo.layers):
        prefix = attention_prefix(spec, layer)
        out_prefix = attention_prefix(new_spec, layer)
        source_names = {rel: prefix + rel for rel in relative}
        for full in source_names.values():
            if full not in reader:
                raise ConversionError(
                    f"tensor {full!r} is missing from the checkpoint in {str(reader.directory)!r}"
                )
        infos = {rel: reader.info(full) for rel, full in source_names.items()}
        src_meta = split_attention(
            spec,
            config,
            {
                rel: torch.empty(info.shape, dtype=info.dtype, device="meta")
                for rel, info in infos.items()
            },
        )
        merged = merge_attention(
            new_spec, new_config, _meta_weights(src_meta, new_geo.heads, new_geo.kv_heads)
        )
        dtype = infos[relative[0]].dtype
        layer_plans[layer] = _LayerPlan(
            source_names=source_names,
            output_names={rel: out_prefix + rel for rel in merged},
            output_shapes={rel: tuple(t.shape) for rel, t in merged.items()},
            dtype=dtype,
        )
        replaced.update(source_names.values())
        for rel, tensor in merged.items():
            owner[out_prefix + rel] = layer
            entries.append((out_prefix + rel, tuple(tensor.shape), out_dtype or dtype))
    copied = [name for name in reader.names() if name not in replaced]
    renames = _output_renames(copied, config, new_config)
    sources: dict[str, str] = {}  # output name -> source name of tensors copied unchanged
    for name in copied:
        info = reader.info(name)
        sources[renames.get(name, name)] = name
        entries.append((renames.get(name, name), info.shape, _stored_dtype(info.dtype, out_dtype)))
    entries.sort(key=lambda e: _natural_key(e[0]))
    return plan_shards(entries, max_shard_size), layer_plans, owner, sources


def _output_renames(names: list[str], config: Any, new_config: Any) -> dict[str, str]:
    """Renames needed when the output model type reads different names than the source's.

    transformers renames some legacy checkpoint names while loading, keyed by architecture
    (gpt_neox stores ``embed_out.weight`` and loads it as ``lm_head.weight``). A custom
    ``<family>_gqa`` output type has no such mapping, so names the output model would not find
    are renamed here by the source architecture's own renaming rules.
    """
    if new_config.model_type == config.model_type:
        return {}
    from transformers import AutoModelForCausalLM
    from transformers.conversion_mapping import get_checkpoint_conversion_mapping
    from transformers.core_model_loading import WeightRenaming

    with torch.device("meta"):
        expected = set(AutoModelForCausalLM.from_config(new_config).state_dict())
    rules: list[tuple[str, str]] = []
    for key in [*(getattr(config, "architectures", None) or []), str(config.model_type)]:
        for transform in get_checkpoint_conversion_mapping(key) or []:
            if type(transform) is WeightRenaming:
                sources = getattr(transform, "_original_source_patterns", transform.source_patterns)
                targets = getattr(transform, "_original_target_patterns", transform.target_patterns)
                rules += list(zip(sources, targets))
    renames = {}
    for name in names:
        for pattern, replacement in rules:
            if name in expected:
                break
            renamed = re.sub(pattern, replacement, name)
            if renamed != name and renamed in expected:
                renames[name] = renamed
                break
    return renames


def _write_shards(
    tmp: Path,
    plan: ShardPlan,
    reader: CheckpointReader,
    converter: _AttentionConverter,
    layer_plans: dict[int, _LayerPlan],
    owner: dict[str, int],
    sources: dict[str, str],
    out_dtype: torch.dtype | None,
    files: dict[str, dict[str, int]],
) -> None:
    shapes: dict[str, tuple[int, ...]] = {}
    dtypes: dict[str, torch.dtype] = {}
    for layer, lp in layer_plans.items():
        for rel, full in lp.output_names.items():
            shapes[full] = lp.output_shapes[rel]
            dtypes[full] = out_dtype or layer_plans[layer].dtype
    pending: dict[int, dict[str, torch.Tensor]] = {}
    next_layer = 0
    bar = progress(
        total=plan.total_size, unit="B", unit_scale=True, unit_divisor=1024, desc="convert"
    )
    try:
        for file_name, names in plan.files.items():
            entries: list[tuple[str, tuple[int, ...], torch.dtype]] = []
            for name in names:
                if name in owner:
                    entries.append((name, shapes[name], dtypes[name]))
                else:
                    info = reader.info(sources[name])
                    entries.append((name, info.shape, _stored_dtype(info.dtype, out_dtype)))
            writer = SafetensorsStreamWriter(tmp / file_name, entries)
            try:
                for name, shape, dt in entries:
                    if name in owner:
                        layer = owner[name]
                        while layer not in pending:  # layers strictly in order (calibration)
                            pending[next_layer] = converter.convert(
                                next_layer, layer_plans[next_layer]
                            )
                            next_layer += 1
                        writer.write(name, pending[layer].pop(name))
                        if not pending[layer]:
                            del pending[layer]
                    else:
                        info = reader.info(sources[name])
                        copy_tensor(
                            reader,
                            sources[name],
                            writer,
                            out_name=name,
                            dtype=out_dtype if info.dtype.is_floating_point else None,
                        )
                    size = int(torch.Size(shape).numel()) * dt.itemsize
                    bar.update(size)
                writer.close()
            except BaseException:
                writer.abort()
                raise
            files[file_name] = {"tensors": len(names), "bytes": (tmp / file_name).stat().st_size}
    finally:
        bar.close()
