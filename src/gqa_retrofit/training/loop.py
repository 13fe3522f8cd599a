"""The pieces of a training run that stand apart from its order: the report, the output
directory's rules, the accelerator, evaluation, metrics and the final export.

:mod:`gqa_retrofit.training.recipe` runs them in order (``train(options)``). The same code runs
in one CPU process, under ``accelerate launch --num_processes N`` (DDP), and
with FSDP or DeepSpeed launch configs. Data parallelism is explicit: each optimizer step consumes
``batch_size * grad_accum * num_processes`` blocks at fixed global positions of the data order
(:func:`~gqa_retrofit.training.data.block_indices`); process ``r`` takes micro-batch slots
``m * num_processes + r``. So a run on N processes sees exactly the batches of a one-process run
with an N times larger batch, and resuming needs only the step number.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .._fs import check_output_location, write_json_atomic
from .._version import __version__
from ..conversion.manifest import rebase_manifest, record_output_files
from ..devices import resolve_device
from ..errors import OutputExistsError, TrainingError
from .checkpoint import (
    exported_use_cache,
    read_marker,
    resolve_resume,
)
from .loss import next_token_ce
from .options import TrainOptions

MANIFEST = "gqa_retrofit.json"
METRICS = "metrics.jsonl"

StepCallback = Callable[[int, dict[str, Any]], None]


@dataclass
class TrainingReport:
    """What a finished run did (also written, without the per-step lists, to the manifest)."""

    out: str
    model: str
    teacher: str | None
    steps: int
    tokens: int
    wall_seconds: float
    tokens_per_second: float
    first_loss: float | None
    final_loss: float | None
    losses: list[float] = field(default_factory=list)
    evaluations: list[dict[str, Any]] = field(default_factory=list)
    data_fingerprint: str = ""
    data_sources: list[str] = field(default_factory=list)
    data_record: dict[str, Any] = field(default_factory=dict)  # files, sha256, tokens per source
    trainable: str = "attention"
    trainable_parameters: int = 0
    memory: dict[str, int] = field(default_factory=dict)
    resumed_from_step: int | None = None
    num_processes: int = 1
    device: str = "cpu"  # where this process trained (cuda:0, cpu, ...)
    dtypes: dict[str, str] = field(default_factory=dict)  # student / teacher weights, resolved
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def record(self) -> dict[str, Any]:
        """The compact training record stored in the manifest."""
        data = self.to_dict()
        data.pop("losses")
        data["tool"] = f"gqa-retrofit {__version__}"
        return data


def _prepare_out(options: TrainOptions, model_dir: Path) -> tuple[Path, Path | None]:
    """Check OUT against the rules; return (out, checkpoint to resume from or None).

    Raises:
        OutputExistsError: OUT overlaps MODEL, holds something that is not a training run of
            this tool, or holds one and neither --resume nor --overwrite was given.
        TrainingError: --resume names something that is not a checkpoint.
    """
    out = Path(options.out)
    check_output_location(out, source=model_dir, overwrite=True)
    if options.teacher and Path(options.teacher).exists():
        check_output_location(out, source=options.teacher, overwrite=True)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"output {options.out!r} is a file: choose a directory")
    marker = read_marker(out) if out.is_dir() else None
    populated = out.is_dir() and any(out.iterdir())
    if populated and marker is None:
        raise OutputExistsError(
            f"output {options.out!r} holds files that are not a gqa-retrofit training run "
            "(e.g. another model): choose an empty or new directory"
        )
    if options.resume is not None:
        if options.resume == "latest" and marker is None:
            raise TrainingError(
                f"--resume latest: {options.out!r} holds no training run to continue"
            )
        return out, resolve_resume(out, options.resume)
    if marker is not None and not options.overwrite:
        raise OutputExistsError(
            f"output {options.out!r} holds a training run: pass --resume to continue it or "
            "--overwrite to start over"
        )
    return out, None


def _make_accelerator(options: TrainOptions) -> Any:
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    # A second train() in one process may ask for other settings (mixed precision): forget the
    # previous run's AcceleratorState, keep the process group (PartialState) of a launch.
    AcceleratorState._reset_state(reset_partial_state=False)

    trackers = []
    for name in options.report_to:
        module = "torch.utils.tensorboard" if name == "tensorboard" else name
        try:
            __import__(module)
            trackers.append(name)
        except ImportError:
            print(
                f"gqa-retrofit train: {name} is not installed; not reporting to it", file=sys.stderr
            )
    mixed = None if options.mixed_precision == "no" else options.mixed_precision
    device = launch_device(options.device)
    # On the CPU, ask for it explicitly: accelerate then sets up gloo data parallelism when
    # launched with several processes (`accelerate launch --multi_gpu --num_processes N` on a
    # CPU-only machine; `--cpu` alone starts a single process).
    return Accelerator(
        cpu=device.type == "cpu",
        mixed_precision=mixed,
        log_with=trackers or None,
        project_dir=options.out if trackers else None,
    )


def launch_device(name: str) -> torch.device:
    """The device this process trains on, from ``--device``.

    ``auto`` and ``cuda`` leave the choice of GPU to the launch (each process of ``accelerate
    launch`` takes its local one); ``cuda:N`` pins a one-process run to GPU N.

    Raises:
        ConfigError: unknown or unavailable device.
        TrainingError: ``cuda:N`` under a launch of several processes.
    """
    device = resolve_device(name)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if device.type == "cuda" and ":" in str(name):
        if world > 1:
            raise TrainingError(
                f"--device {name!r} pins one GPU but the launch runs {world} processes: use "
                "--device auto (each process takes its local GPU)"
            )
        torch.cuda.set_device(device)
    return device


def _is_sharded(accelerator: Any) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)


def _evaluate(
    model: Any, blocks: torch.Tensor, batch_size: int, device: Any, accelerator: Any
) -> dict[str, float]:
    """Mean next-token loss and perplexity over ``blocks`` (every process computes the same)."""
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), accelerator.autocast():
        for i in range(0, blocks.shape[0], batch_size):
            ids = blocks[i : i + batch_size].to(device)
            logits = model(input_ids=ids, use_cache=False).logits
            n = ids.shape[0] * (ids.shape[1] - 1)
            total += float(next_token_ce(logits, ids)) * n
            count += n
    model.train()
    loss = total / max(1, count)
    return {"eval_loss": loss, "eval_perplexity": math.exp(min(loss, 700.0)), "eval_tokens": count}


def _append_metrics(path: Path, record: dict[str, Any]) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines after ``step`` (a resumed run rewrites them)."""
    if not path.is_file():
        return
    keep = [
        line
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
    os.replace(tmp, path)


def _export_final(
    out: Path,
    *,
    accelerator: Any,
    model: Any,
    tokenizer: Any,
    model_dir: Path,
    trainable: str,
    report: TrainingReport,
) -> None:
    """Write the plain HF checkpoint (LoRA merged) and the manifest into OUT, file by file."""
    unwrapped = accelerator.unwrap_model(model)
    if trainable == "lora":
        unwrapped = unwrapped.merge_and_unload()
        state_dict = unwrapped.state_dict() if not _is_sharded(accelerator) else None
    else:
        state_dict = accelerator.get_state_dict(model)
    if state_dict is None:  # pragma: no cover - sharded LoRA: gather after merging
        state_dict = accelerator.get_state_dict(unwrapped)
    if not accelerator.is_main_process:
        return
    tmp = out / ".final.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    unwrapped.config.use_cache = exported_use_cache(model_dir)  # training turned it off
    unwrapped.save_pretrained(str(tmp), state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    manifest_path = model_dir / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["training"] = report.record()
        rebase_manifest(manifest, model_dir, out)  # relative paths now start at OUT
        record_output_files(tmp, manifest)  # new weights and config: new hashes
        write_json_atomic(tmp / MANIFEST, manifest)
    # config.json last: a reader never sees a config whose weights are still being moved
    names = sorted(p.name for p in tmp.iterdir())
    names.sort(key=lambda n: n == "config.json")
    for name in names:
        os.replace(tmp / name, out / name)
    tmp.rmdir()
