"""How much memory a training run needs on each device, computed from the config alone.

``gqa-retrofit train --dry-run`` prints this plan. Parameter counts come from the model built on
the meta device (no weights are read); the rest is arithmetic, per device and per micro-batch of
``T = batch_size x seq_len`` tokens:

- student weights ``P x b_w``; gradients of what trains ``P_t x b_w``; AdamW's two moments
  ``2 P_t x b_w`` (torch keeps them in the parameter dtype); each divided by N under FSDP;
- teacher weights ``P_T x b_T`` (divided by N under FSDP: it is sharded like the student);
- FSDP's gathered units: two decoder layers unsharded (the one running and the prefetched one),
  for the student and the teacher;
- activations saved for backward, per decoder layer and token, in elements (counted from what
  autograd keeps for a gated-MLP decoder layer with SDPA attention; exact for the eager fp32 path
  on CPU, checked against ``saved_tensors_hooks`` in the tests):
  ``2d + 2 d_q + 2 d_kv + n_h + 2 + 3 f`` when gradients flow through the layer, plus ``d`` when the
  attention projections train and ``4d + f`` when everything trains (``d`` hidden, ``d_q = n_h
  d_h``, ``d_kv = n_kv d_h``, ``f`` the MLP width); with gradient checkpointing only each layer's
  input ``d`` is kept, plus one layer recomputed in backward. Under mixed precision they are
  counted at the compute width (autocast keeps bf16 copies; norms stay fp32: an estimate);
- logits: ``T x V`` values for the student logits, their log-softmax and their gradient (fp32),
  plus with distillation the teacher logits, both temperature-scaled log-softmaxes.

Options that make a run fit are tried in the order a user would reach for them
(:data:`FIT_LADDER`), and the first that fits is printed.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..arch.geometry import Geometry
from ..devices import DTYPE_BYTES, HALF_DTYPES, dtype_name
from ..errors import ConfigError

GIB = 1024**3


@dataclass(frozen=True)
class TrainingShape(Geometry):
    """What the plan needs to know about one model (from its config, on the meta device): its
    :class:`~gqa_retrofit.arch.geometry.Geometry` and parameter counts."""

    params: int
    layer_params: int  # parameters of one decoder layer (the FSDP unit)
    attention_params: int  # parameters of the attention projections, all layers
    intermediate: int
    vocab: int
    lora_params: int  # LoRA adapters on the attention projections
    lora_rank: int = 16
    lora_modules: int = 4  # adapted projections per decoder layer
    qk_norm: bool = False  # per-head RMSNorm on q and k (qwen3, gemma3)

    @classmethod
    def from_config(cls, config: Any, *, lora_r: int = 16) -> TrainingShape:
        """Count parameters of ``config``'s model built on the meta device.

        Raises:
            ConfigError: the family is unknown or the config lacks a size.
        """
        import torch
        from transformers import AutoModelForCausalLM

        from ..arch import get_family
        from ..arch.layout import attention_geometry
        from .modeling import _register_custom_types, attention_projection_names

        _register_custom_types()
        spec = get_family(str(config.model_type))
        geo = attention_geometry(spec, config)
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(config)
        params = sum(p.numel() for p in model.parameters())
        from .sharding import decoder_layers

        layers = decoder_layers(model)
        if not layers:
            raise ConfigError(f"cannot find the decoder layers of model type {config.model_type!r}")
        names = attention_projection_names(model)
        modules = [model.get_submodule(n) for n in names]
        attention = sum(p.numel() for m in modules for p in m.parameters())
        lora = sum(lora_r * (m.in_features + m.out_features) for m in modules)
        intermediate = getattr(config, "intermediate_size", None) or 4 * geo.hidden
        return cls(
            params=params,
            layer_params=sum(p.numel() for p in layers[0].parameters()),
            attention_params=attention,
            layers=len(layers),
            hidden=geo.hidden,
            heads=geo.heads,
            kv_heads=geo.kv_heads,
            head_dim=geo.head_dim,
            intermediate=int(intermediate),
            vocab=int(config.vocab_size),
            lora_params=lora,
            lora_rank=lora_r,
            lora_modules=len(modules) // len(layers),
            qk_norm=bool(spec.qk_norm),
        )

    @classmethod
    def from_path(cls, path: str | Path) -> TrainingShape:
        """The shape of the model whose ``config.json`` is in ``path`` (a directory or the file).

        Raises:
            ConfigError: no readable config.json there.
        """
        from transformers import AutoConfig

        p = Path(path)
        file = p / "config.json" if p.is_dir() else p
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ConfigError(f"cannot read a config.json at {str(path)!r}: {err}") from None
        return cls.from_config(AutoConfig.for_model(data.pop("model_type"), **data))


@dataclass(frozen=True)
class PlanSetup:
    """The run settings the plan depends on."""

    devices: int = 1
    device_bytes: int = 80 * 10**9
    fsdp: bool = False
    dtype: str = "fp32"  # student weights (and optimizer state)
    mixed_precision: str = "no"  # no, bf16, fp16: the compute width
    teacher_dtype: str | None = None  # None: no teacher
    gradient_checkpointing: bool = False
    batch_size: int = 4
    seq_len: int = 512
    trainable: str = "attention"

    def flags(self) -> list[str]:
        """The CLI flags (and launch) that produce this setup."""
        out = [
            f"--trainable {self.trainable}",
            f"--batch-size {self.batch_size}",
            f"--seq-len {self.seq_len}",
        ]
        if self.dtype != "fp32":
            out.append(f"--dtype {self.dtype}")
        if self.mixed_precision != "no":
            out.append(f"--mixed-precision {self.mixed_precision}")
        if self.teacher_dtype is not None:
            out.append(f"--teacher-dtype {self.teacher_dtype}")
        if self.gradient_checkpointing:
            out.append("--gradient-checkpointing")
        if self.fsdp:
            out.append(f"FSDP2 over {self.devices} devices (examples/accelerate/fsdp.yaml)")
        return out


@dataclass
class MemoryPlan:
    """Bytes per device, by part, for one setup."""

    setup: PlanSetup
    parts: dict[str, int] = field(default_factory=dict)

    @property
    def total_bytes(self) -> int:
        return sum(self.parts.values())

    @property
    def fits(self) -> bool:
        return self.total_bytes <= self.setup.device_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "setup": asdict(self.setup),
            "parts": dict(self.parts),
            "total_bytes": self.total_bytes,
            "device_bytes": self.setup.device_bytes,
            "fits": self.fits,
        }

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / GIB:.1f}" for k, v in self.parts.items() if v)
        verdict = "fits" if self.fits else "does NOT fit"
        return (
            f"{self.total_bytes / GIB:.1f} GiB per device of {self.setup.device_bytes / GIB:.1f} "
            f"({verdict}; GiB: {parts})"
        )


def layer_activation_elements(shape: TrainingShape, trainable: str) -> int:
    """Elements autograd keeps per token for one decoder layer (see the module docstring)."""
    d, f = shape.hidden, shape.intermediate
    dq, dkv = shape.heads * shape.head_dim, shape.kv_heads * shape.head_dim
    base = 2 * d + 2 * dq + 2 * dkv + shape.heads + 2 + 3 * f
    if shape.qk_norm:  # each per-head norm keeps its input and its 1/rms
        base += dq + dkv + shape.heads + shape.kv_heads
    if trainable == "all":
        return base + 4 * d + f + (dq + dkv if shape.qk_norm else 0)
    if trainable == "lora":  # the adapters' A outputs, r values per adapted projection
        base += shape.lora_modules * shape.lora_rank
    return base + d  # attention projections (and LoRA adapters on them) need their input


def activation_bytes(shape: TrainingShape, setup: PlanSetup) -> int:
    """Bytes saved for backward by the decoder layers for one micro-batch.

    When everything trains, gradients also flow into the embeddings and the output head: the
    ids (int64), the first layer's input and 1/rms, the final norm's output and the head's input.
    """
    tokens = setup.batch_size * setup.seq_len
    width = _compute_bytes(setup)
    per_layer = layer_activation_elements(shape, setup.trainable) * tokens * width
    rope = 2 * setup.seq_len * shape.head_dim * 4  # cos and sin, fp32, shared by all layers
    ends = (3 * shape.hidden + 1) * tokens * width + 8 * tokens if setup.trainable == "all" else 0
    if setup.gradient_checkpointing:
        return shape.layers * tokens * shape.hidden * width + per_layer + rope + ends
    return shape.layers * per_layer + rope + ends


def logits_bytes(shape: TrainingShape, setup: PlanSetup) -> int:
    """Bytes of the logits and the loss's vocabulary-sized tensors for one micro-batch."""
    tv = setup.batch_size * setup.seq_len * shape.vocab
    width = _compute_bytes(setup)
    student = tv * width + tv * 4 * 2  # logits, fp32 log-softmax, fp32 gradient
    if width != 4:
        student += tv * 4  # the fp32 upcast for the loss
    if setup.teacher_dtype is None:
        return student
    teacher = tv * _compute_bytes(setup, DTYPE_BYTES[setup.teacher_dtype])
    return student + teacher + tv * 4 * 2  # both temperature-scaled log-softmaxes


def _compute_bytes(setup: PlanSetup, weights: int | None = None) -> int:
    if setup.mixed_precision in HALF_DTYPES:
        return 2
    return weights if weights is not None else DTYPE_BYTES[setup.dtype]


def plan_memory(
    student: TrainingShape, setup: PlanSetup, *, teacher: TrainingShape | None = None
) -> MemoryPlan:
    """Bytes per device of a run with ``setup`` (see the module docstring for each part)."""
    b_w = DTYPE_BYTES[setup.dtype]
    shards = setup.devices if setup.fsdp else 1
    trained = {
        "attention": student.attention_params,
        "all": student.params,
        "lora": student.lora_params,
    }[setup.trainable]
    parts = {
        "weights": student.params * b_w // shards
        + (student.lora_params * b_w if setup.trainable == "lora" else 0),
        "gradients": trained * b_w // shards,
        "optimizer": 2 * trained * b_w // shards,
        "teacher": 0,
        "fsdp_buffers": 0,
        "activations": activation_bytes(student, setup),
        "logits": logits_bytes(student, setup),
    }
    if setup.teacher_dtype is not None:
        t = teacher or student
        parts["teacher"] = t.params * DTYPE_BYTES[setup.teacher_dtype] // shards
    if setup.fsdp and setup.devices > 1:
        buffers = 2 * student.layer_params * _compute_bytes(setup, b_w)
        if setup.teacher_dtype is not None:
            buffers += 2 * (teacher or student).layer_params * DTYPE_BYTES[setup.teacher_dtype]
        parts["fsdp_buffers"] = buffers
    return MemoryPlan(setup, parts)


#: The order in which the dry run adds options until the run fits: (what, setting, value).
FIT_LADDER: tuple[tuple[str, str, Any], ...] = (
    ("bf16 mixed precision", "mixed_precision", "bf16"),
    ("teacher in bf16", "teacher_dtype", "bf16"),
    ("FSDP2 sharding", "fsdp", True),
    ("gradient checkpointing", "gradient_checkpointing", True),
    ("batch size 1", "batch_size", 1),
    ("student weights in bf16", "dtype", "bf16"),
    ("LoRA adapters instead of the attention weights", "trainable", "lora"),
)


def _ladder(setup: PlanSetup) -> list[tuple[str, PlanSetup]]:
    """Setups to try when ``setup`` does not fit, each adding one option to the previous
    (options already set, a teacher step without teacher, FSDP on one device are skipped)."""
    steps: list[tuple[str, PlanSetup]] = []
    current = setup
    for label, name, value in FIT_LADDER:
        if getattr(current, name) == value:
            continue
        if name == "teacher_dtype" and setup.teacher_dtype is None:
            continue
        if name == "fsdp" and setup.devices < 2:
            continue
        if name == "trainable" and setup.trainable == "all":
            continue  # LoRA would train something else entirely, not a memory option
        current = replace(current, **{name: value})
        steps.append((label, current))
    return steps


def fit_plan(
    student: TrainingShape, setup: PlanSetup, *, teacher: TrainingShape | None = None
) -> tuple[MemoryPlan, list[tuple[str, MemoryPlan]]]:
    """The plan for ``setup`` and, when it does not fit, the ladder of plans up to the first
    that fits (all of the ladder when none does)."""
    plan = plan_memory(student, setup, teacher=teacher)
    tried: list[tuple[str, MemoryPlan]] = []
    if plan.fits:
        return plan, tried
    for label, candidate in _ladder(setup):
        tried.append((label, plan_memory(student, candidate, teacher=teacher)))
        if tried[-1][1].fits:
            break
    return plan, tried


def render_plan(plan: MemoryPlan, tried: list[tuple[str, MemoryPlan]]) -> str:
    """The dry run's text: the plan as asked, then what does not fit and what makes it fit."""
    s = plan.setup
    where = f"{s.devices} device(s) of {s.device_bytes / GIB:.1f} GiB"
    lines = [f"memory plan per device ({where}): {plan.describe()}"]
    if plan.fits:
        return "\n".join(lines)
    for label, candidate in tried:
        lines.append(f"  + {label}: {candidate.describe()}")
    if tried and tried[-1][1].fits:
        lines.append("fits with: " + " ".join(tried[-1][1].setup.flags()))
    else:
        lines.append(
            "does not fit even with every option: use more devices, a shorter --seq-len or "
            "--trainable lora"
        )
    return "\n".join(lines)


_UNITS = {
    "b": 1,
    "kb": 10**3,
    "mb": 10**6,
    "gb": 10**9,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_memory(value: str | int) -> int:
    """Bytes of ``80GiB``, ``80GB`` (decimal), ``512MiB`` or a plain integer.

    Raises:
        ConfigError: not a positive size.
    """
    import re

    if isinstance(value, int) and value > 0:
        return value
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([kmgt]?i?b)?\s*", str(value).lower())
    if match is None or (match.group(2) or "b") not in _UNITS or float(match.group(1)) <= 0:
        raise ConfigError(
            f"--device-memory {value!r} is invalid: use a size such as 80GiB, 80GB or 512MiB"
        )
    return int(float(match.group(1)) * _UNITS[match.group(2) or "b"])


def _default_devices() -> tuple[int, int]:
    """(devices, bytes per device) of this machine: the launch's processes or the GPUs, each
    GPU's memory; on a CPU-only machine one device holding the physical RAM."""
    import os

    import torch

    world = int(os.environ.get("WORLD_SIZE", "0"))
    if torch.cuda.is_available():
        return world or torch.cuda.device_count(), int(
            torch.cuda.get_device_properties(0).total_memory
        )
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return world or 1, int(ram)


def _checkpoint_dtype_at(path: str) -> str | None:
    from ..devices import checkpoint_dtype

    p = Path(path)
    file = p / "config.json" if p.is_dir() else p
    try:
        return checkpoint_dtype(json.loads(file.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError):
        return None


def setup_from_options(options: Any, *, devices: int, device_bytes: int) -> PlanSetup:
    """The :class:`PlanSetup` of a :class:`~gqa_retrofit.training.options.TrainOptions`
    (``auto`` dtypes read from the checkpoints' configs; fp32 where they record none)."""
    teacher_dtype = None
    if options.teacher:
        name = dtype_name(options.teacher_dtype, allow_auto=True)
        teacher_dtype = (
            (_checkpoint_dtype_at(options.teacher) or "fp32") if name == "auto" else name
        )
    student = dtype_name(options.dtype, allow_auto=True)
    if student == "auto":
        student = _checkpoint_dtype_at(options.model) or "fp32"
    import os

    return PlanSetup(
        devices=devices,
        device_bytes=device_bytes,
        fsdp=os.environ.get("ACCELERATE_USE_FSDP", "false").lower() == "true",
        dtype=student,
        mixed_precision=options.mixed_precision,
        teacher_dtype=teacher_dtype,
        gradient_checkpointing=options.gradient_checkpointing,
        batch_size=options.batch_size,
        seq_len=options.seq_len,
        trainable=options.trainable,
    )


@dataclass
class TrainingPlan:
    """What ``train --dry-run`` prints: the plan as asked and the options that make it fit."""

    plan: MemoryPlan
    tried: list[tuple[str, MemoryPlan]]

    @property
    def fitting(self) -> MemoryPlan | None:
        """The first plan that fits (the one asked for, or the last of the ladder), if any."""
        if self.plan.fits:
            return self.plan
        if self.tried and self.tried[-1][1].fits:
            return self.tried[-1][1]
        return None

    def to_dict(self) -> dict[str, Any]:
        fitting = self.fitting
        return {
            "plan": self.plan.to_dict(),
            "tried": [{"added": label, **p.to_dict()} for label, p in self.tried],
            "fits_with": None if fitting is None else fitting.setup.flags(),
        }

    def render(self) -> str:
        return render_plan(self.plan, self.tried)


def plan_training(options: Any) -> TrainingPlan:
    """The memory plan of a training run, from its options and the checkpoints' configs only.

    ``options.plan_devices`` and ``options.device_memory`` describe the target machine
    (default: this one). MODEL and the teacher may be directories holding only ``config.json``.

    Raises:
        ConfigError: no readable config, a bad ``--device-memory``.
    """
    devices, device_bytes = _default_devices()
    if options.plan_devices is not None:
        devices = int(options.plan_devices)
    if options.device_memory is not None:
        device_bytes = parse_memory(options.device_memory)
    setup = setup_from_options(options, devices=devices, device_bytes=device_bytes)
    student = TrainingShape.from_path(options.model)
    teacher = TrainingShape.from_path(options.teacher) if options.teacher else None
    plan, tried = fit_plan(student, setup, teacher=teacher)
    return TrainingPlan(plan, tried)
