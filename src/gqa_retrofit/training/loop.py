"""``train(options)``: continued training with optional distillation, on ``accelerate``.

The same code runs in one CPU process, under ``accelerate launch --num_processes N`` (DDP), and
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
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from .. import __version__
from .._fs import check_output_location, write_json_atomic
from .._progress import is_quiet, progress
from ..errors import DataError, OutputExistsError, TrainingError
from ..hub.resolve import resolve_checkpoint_dir
from .checkpoint import (
    load_checkpoint,
    read_marker,
    resolve_resume,
    save_checkpoint,
    write_marker,
)
from .data import PackedData, block_indices, load_packed, source_files
from .loss import next_token_ce, training_loss
from .modeling import (
    check_teacher_compatible,
    estimate_memory,
    load_causal_lm,
    load_tokenizer,
    set_trainable,
)
from .options import TrainOptions
from .schedule import lr_multiplier

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
    trainable: str = "attention"
    trainable_parameters: int = 0
    memory: dict[str, int] = field(default_factory=dict)
    resumed_from_step: int | None = None
    num_processes: int = 1
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
    # Without an accelerator device, ask for CPU explicitly: accelerate then sets up gloo data
    # parallelism when launched with several processes (`accelerate launch --multi_gpu
    # --num_processes N` on a CPU-only machine; `--cpu` alone starts a single process).
    mps = getattr(torch.backends, "mps", None)
    cpu = not torch.cuda.is_available() and not (mps is not None and mps.is_available())
    return Accelerator(
        cpu=cpu,
        mixed_precision=mixed,
        log_with=trackers or None,
        project_dir=options.out if trackers else None,
    )


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
    unwrapped.save_pretrained(str(tmp), state_dict=state_dict, safe_serialization=True)
    tokenizer.save_pretrained(str(tmp))
    manifest_path = model_dir / MANIFEST
    if manifest_path.is_file():
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        manifest["training"] = report.record()
        write_json_atomic(tmp / MANIFEST, manifest)
    # config.json last: a reader never sees a config whose weights are still being moved
    names = sorted(p.name for p in tmp.iterdir())
    names.sort(key=lambda n: n == "config.json")
    for name in names:
        os.replace(tmp / name, out / name)
    tmp.rmdir()


def train(options: TrainOptions, *, on_step: StepCallback | None = None) -> TrainingReport:
    """Continue training ``options.model`` (optionally distilling ``options.teacher``).

    Args:
        options: the run's options (validated here).
        on_step: called on every process after each optimizer step with ``(step, metrics)``.

    Returns:
        A :class:`TrainingReport`; OUT holds the final plain HF checkpoint, ``metrics.jsonl``,
        the last checkpoint(s) and, when MODEL had one, the manifest with a ``training`` record.

    Raises:
        TrainingError: bad options, incompatible teacher, bad resume directory, NaN/Inf loss.
        DataError: empty data, data shorter than one block, evaluation text in the training data.
        OutputExistsError: OUT holds something else (see :func:`_prepare_out`).
        ModelSourceError: MODEL or teacher cannot be resolved.
    """
    options.validate()
    if is_quiet():
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars
    model_dir = resolve_checkpoint_dir(options.model)
    teacher_dir = resolve_checkpoint_dir(options.teacher) if options.teacher else None
    out, resume_ckpt = _prepare_out(options, model_dir)

    tokenizer = load_tokenizer(model_dir, trust_remote_code=options.trust_remote_code)
    if teacher_dir is not None:
        check_teacher_compatible(
            model_dir, teacher_dir, tokenizer, trust_remote_code=options.trust_remote_code
        )
    if options.eval_data is not None:
        overlap = source_files([options.eval_data]) & source_files(options.train_data)
        if overlap:
            raise DataError(
                f"evaluation text {sorted(overlap)[0]!r} is also in the training data: "
                "evaluate on held-out text"
            )

    accelerator = _make_accelerator(options)
    world = accelerator.num_processes
    blocks_per_step = options.batch_size * options.grad_accum * world
    tokens_per_step = blocks_per_step * options.seq_len
    max_blocks = None
    if options.train_steps is not None:
        max_blocks = options.train_steps * blocks_per_step
    elif options.train_tokens is not None:
        max_blocks = math.ceil(options.train_tokens / tokens_per_step) * blocks_per_step
    data: PackedData = load_packed(
        options.train_data,
        tokenizer,
        options.seq_len,
        text_column=options.text_column,
        max_blocks=max_blocks,
    )
    if options.train_steps is not None:
        total_steps = options.train_steps
    elif options.train_tokens is not None:
        total_steps = math.ceil(options.train_tokens / tokens_per_step)
    else:
        total_steps = max(1, data.n_blocks // blocks_per_step)
    eval_blocks = None
    if options.eval_data is not None:
        eval_blocks = load_packed(
            [options.eval_data],
            tokenizer,
            options.seq_len,
            text_column=options.text_column,
            max_blocks=options.eval_windows,
            what="evaluation data",
        ).blocks[: options.eval_windows]

    torch.manual_seed(options.seed)
    student = load_causal_lm(model_dir, trust_remote_code=options.trust_remote_code)
    student.config.use_cache = False
    model = set_trainable(
        student, options.trainable, lora_r=options.lora_r, lora_alpha=options.lora_alpha
    )
    if options.gradient_checkpointing:
        kwargs = {"use_reentrant": False}
        if hasattr(student, "activation_checkpointing_enable"):  # transformers >= 5.24
            student.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
        else:
            student.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        if options.trainable != "all":
            student.enable_input_require_grads()
    teacher = None
    if teacher_dir is not None:
        teacher = load_causal_lm(teacher_dir, trust_remote_code=options.trust_remote_code)
        teacher.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in params)
    memory = estimate_memory(model, teacher)
    if accelerator.is_main_process and not is_quiet():
        print(
            f"gqa-retrofit train: {memory.describe()}; {n_trainable:,} trainable parameters; "
            f"{total_steps} steps of {tokens_per_step:,} tokens on {world} process(es)",
            file=sys.stderr,
        )
    optimizer = torch.optim.AdamW(params, lr=options.lr, weight_decay=options.weight_decay)
    model.train()
    model, optimizer = accelerator.prepare(model, optimizer)
    if teacher is not None:
        teacher = teacher.to(accelerator.device)
    sharded = _is_sharded(accelerator)

    metrics_path = out / METRICS
    start_step, tokens_done, losses, evaluations = 0, 0, [], []
    wall_before = 0.0
    if resume_ckpt is not None:
        state = load_checkpoint(
            resume_ckpt, accelerator=accelerator, model=model, optimizer=optimizer, sharded=sharded
        )
        for key, now in (
            ("data_fingerprint", data.fingerprint),
            ("blocks_per_step", blocks_per_step),
            ("seq_len", options.seq_len),
            ("seed", options.seed),
            ("trainable", options.trainable),
        ):
            if state.get(key) != now:
                raise TrainingError(
                    f"cannot resume from {str(resume_ckpt)!r}: {key} was {state.get(key)!r}, "
                    f"now {now!r}; resume with the same data and batch settings"
                )
        start_step = int(state["step"])
        tokens_done = int(state["tokens"])
        losses = list(state.get("losses", []))
        evaluations = list(state.get("evaluations", []))
        wall_before = float(state.get("wall_seconds", 0.0))
        if accelerator.is_main_process:
            _truncate_metrics(metrics_path, start_step)
    elif accelerator.is_main_process:
        if out.exists() and options.overwrite:
            shutil.rmtree(out)
        out.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    run_info = {
        "model": options.model,
        "teacher": options.teacher,
        "options": options.to_dict(),
        "data_fingerprint": data.fingerprint,
        "total_steps": total_steps,
    }
    if accelerator.is_main_process:
        previous = read_marker(out) or {}
        write_marker(
            out,
            {
                **run_info,
                "latest_checkpoint": previous.get("latest_checkpoint"),
                "step": start_step,
                "complete": False,
            },
        )
    if trackers_on := bool(options.report_to) and accelerator.log_with:
        accelerator.init_trackers(
            "gqa-retrofit-train",
            config={
                k: v for k, v in options.to_dict().items() if isinstance(v, (int, float, str, bool))
            },
        )

    def checkpoint_state(step: int, wall: float) -> dict[str, Any]:
        return {
            "step": step,
            "tokens": tokens_done,
            "losses": losses,
            "evaluations": evaluations,
            "wall_seconds": wall,
            "data_fingerprint": data.fingerprint,
            "blocks_per_step": blocks_per_step,
            "seq_len": options.seq_len,
            "seed": options.seed,
            "trainable": options.trainable,
            "total_steps": total_steps,
            "data_position": step * blocks_per_step,
        }

    def save(step: int, wall: float) -> None:
        ckpt = save_checkpoint(
            out,
            step,
            accelerator=accelerator,
            model=model,
            optimizer=optimizer,
            state=checkpoint_state(step, wall),
            sharded=sharded,
            keep=options.keep_checkpoints,
        )
        if accelerator.is_main_process:
            write_marker(
                out,
                {
                    **run_info,
                    "latest_checkpoint": f"checkpoints/{ckpt.name}",
                    "step": step,
                    "complete": False,
                },
            )

    device = accelerator.device
    rank = accelerator.process_index
    bar = progress(
        total=total_steps,
        initial=start_step,
        desc="train",
        unit="step",
        disable=is_quiet() or not accelerator.is_main_process,
    )
    t_start = time.perf_counter()
    tokens_at_start = tokens_done
    for step in range(start_step + 1, total_steps + 1):
        step_base = (step - 1) * blocks_per_step
        sums = torch.zeros(4, dtype=torch.float64, device=device)  # loss, ce, kl, nonfinite
        for micro in range(options.grad_accum):
            slot = micro * world + rank
            idx = block_indices(
                data.n_blocks,
                options.seed,
                step_base + slot * options.batch_size,
                options.batch_size,
            )
            ids = data.blocks[idx].to(device)
            last = micro == options.grad_accum - 1
            sync = nullcontext() if last or world == 1 else accelerator.no_sync(model)
            with sync:
                with accelerator.autocast():
                    logits = model(input_ids=ids, use_cache=False).logits
                    teacher_logits = None
                    if teacher is not None:
                        with torch.no_grad():
                            teacher_logits = teacher(input_ids=ids, use_cache=False).logits
                parts = training_loss(
                    logits,
                    ids,
                    teacher_logits,
                    distill_weight=options.distill_weight,
                    temperature=options.temperature,
                )
                finite = bool(torch.isfinite(parts.loss.detach()))
                # backward even on NaN: DDP processes must all join the gradient all-reduce;
                # the step is refused below before the optimizer touches anything
                accelerator.backward(parts.loss / options.grad_accum)
            sums[0] += float(parts.loss.detach()) if finite else 0.0
            sums[1] += float(parts.ce) if finite else 0.0
            sums[2] += float(parts.kl) if parts.kl is not None and finite else 0.0
            sums[3] += 0.0 if finite else 1.0
            # free this micro-batch's logits now, not when the next forward overwrites them
            del logits, teacher_logits, parts
        sums = accelerator.reduce(sums, reduction="sum")
        if float(sums[3]) > 0:
            bar.close()
            latest = (read_marker(out) or {}).get("latest_checkpoint")
            where = (
                f"last good checkpoint: {out / latest}" if latest else "no checkpoint was saved yet"
            )
            raise TrainingError(
                f"loss became NaN/Inf at step {step} (lr {options.lr}): stopped before the "
                f"optimizer step; {where}. Lower --lr or check the model and data"
            )
        denom = options.grad_accum * world
        loss_value = float(sums[0]) / denom
        mult = lr_multiplier(
            step - 1,
            total_steps,
            schedule=options.schedule,
            warmup=options.warmup,
            decay_fraction=options.decay_fraction,
            min_lr_ratio=options.min_lr_ratio,
        )
        for group in optimizer.param_groups:
            group["lr"] = options.lr * mult
        grad_norm = None
        if options.max_grad_norm > 0:
            norm = accelerator.clip_grad_norm_(
                params if not sharded else model.parameters(), options.max_grad_norm
            )
            grad_norm = None if norm is None else float(norm)  # DeepSpeed clips internally
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        tokens_done += tokens_per_step
        losses.append(loss_value)
        elapsed = time.perf_counter() - t_start
        record: dict[str, Any] = {
            "step": step,
            "loss": loss_value,
            "ce": float(sums[1]) / denom,
            "lr": options.lr * mult,
            "grad_norm": grad_norm,
            "tokens": tokens_done,
            "tokens_per_second": (tokens_done - tokens_at_start) / max(elapsed, 1e-9),
            "elapsed_seconds": wall_before + elapsed,
        }
        if teacher is not None:
            record["kl"] = float(sums[2]) / denom
        if (
            eval_blocks is not None
            and options.eval_every
            and step % options.eval_every == 0
            and step != total_steps
        ):
            result = _evaluate(model, eval_blocks, options.batch_size, device, accelerator)
            evaluations.append({"step": step, **result})
            record.update(result)
        if accelerator.is_main_process:
            _append_metrics(metrics_path, record)
        if trackers_on:
            accelerator.log({k: v for k, v in record.items() if v is not None}, step=step)
        bar.set_postfix(
            loss=f"{loss_value:.4f}", tok_s=f"{record['tokens_per_second']:.0f}", refresh=False
        )
        bar.update(1)
        if on_step is not None:
            on_step(step, record)
        if options.save_every and step % options.save_every == 0 and step != total_steps:
            save(step, wall_before + time.perf_counter() - t_start)
    bar.close()

    if eval_blocks is not None:
        result = _evaluate(model, eval_blocks, options.batch_size, device, accelerator)
        evaluations.append({"step": total_steps, **result})
        if accelerator.is_main_process:
            _append_metrics(metrics_path, {"step": total_steps, **result})
    wall = wall_before + time.perf_counter() - t_start
    run_tokens = tokens_done - tokens_at_start
    report = TrainingReport(
        out=str(out),
        model=options.model,
        teacher=options.teacher,
        steps=total_steps,
        tokens=tokens_done,
        wall_seconds=wall,
        tokens_per_second=run_tokens / max(time.perf_counter() - t_start, 1e-9),
        first_loss=losses[0] if losses else None,
        final_loss=losses[-1] if losses else None,
        losses=losses,
        evaluations=evaluations,
        data_fingerprint=data.fingerprint,
        data_sources=data.sources,
        trainable=options.trainable,
        trainable_parameters=n_trainable,
        memory=memory.to_dict(),
        resumed_from_step=start_step if resume_ckpt is not None else None,
        num_processes=world,
        options=options.to_dict(),
    )
    if start_step < total_steps or resume_ckpt is None:
        save(total_steps, wall)
    _export_final(
        out,
        accelerator=accelerator,
        model=model,
        tokenizer=tokenizer,
        model_dir=model_dir,
        trainable=options.trainable,
        report=report,
    )
    if accelerator.is_main_process:
        write_marker(
            out,
            {
                **run_info,
                "latest_checkpoint": f"checkpoints/step-{total_steps:06d}",
                "step": total_steps,
                "complete": True,
                "report": report.record(),
            },
        )
    if trackers_on:
        accelerator.end_training()
    accelerator.wait_for_everyone()
    return report
