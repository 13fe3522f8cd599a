"""``train(options)``: continued training with optional distillation, as a recipe in five steps.

:class:`TrainingRecipe` follows torchtune's recipe shape, one method per phase:

1. :meth:`~TrainingRecipe.setup`: resolve MODEL/teacher/OUT, read the data, build the
   accelerator, load student (``--dtype``) and teacher (``--teacher-dtype``, no gradients),
   prepare the optimizer;
2. :meth:`~TrainingRecipe.resume`: restore a checkpoint (``--resume``) or start OUT afresh;
3. :meth:`~TrainingRecipe.train_step`: one optimizer step over ``grad_accum`` micro-batches;
4. :meth:`~TrainingRecipe.evaluate` and :meth:`~TrainingRecipe.save`: held-out loss and
   checkpoints, every N steps;
5. :meth:`~TrainingRecipe.finish`: final evaluation, last checkpoint, the plain HF export.

The same code runs in one process, under ``accelerate launch --num_processes N`` (DDP), and with
FSDP or DeepSpeed launch configs (see :mod:`gqa_retrofit.training.loop` for the data order).
"""

from __future__ import annotations

import math
import shutil
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch

from .._progress import is_quiet, progress
from ..devices import check_cast_finite, checkpoint_dtype, resolve_dtype, torch_dtype
from ..errors import DataError, TrainingError
from ..sources import resolve_checkpoint_dir
from .checkpoint import load_checkpoint, read_marker, save_checkpoint, write_marker
from .data import PackedData, block_indices, load_packed, source_files
from .loop import (
    METRICS,
    StepCallback,
    TrainingReport,
    _append_metrics,
    _evaluate,
    _export_final,
    _is_sharded,
    _make_accelerator,
    _prepare_out,
    _truncate_metrics,
)
from .loss import training_loss
from .modeling import (
    check_teacher_compatible,
    estimate_memory,
    load_causal_lm,
    load_tokenizer,
    read_config,
    set_trainable,
)
from .options import TrainOptions
from .schedule import lr_multiplier
from .sharding import place_teacher

# Checkpoint state that must match on resume: (key, what to tell the user).
_RESUME_KEYS = ("data_fingerprint", "blocks_per_step", "seq_len", "seed", "trainable")


class TrainingRecipe:
    """One training run: ``setup()``, ``resume()``, then steps, then ``finish()``.

    Args:
        options: the run's options (validated here).
        on_step: called on every process after each optimizer step with ``(step, metrics)``.

    Raises:
        TrainingError: from :meth:`__init__` when an option is invalid.
        ConfigError: an unknown or unavailable ``--device``, an unknown dtype.
    """

    def __init__(self, options: TrainOptions, *, on_step: StepCallback | None = None) -> None:
        self.options = options.validate()
        self.on_step = on_step
        self.start_step = 0
        self.tokens_done = 0
        self.losses: list[float] = []
        self.evaluations: list[dict[str, Any]] = []
        self.wall_before = 0.0
        self.teacher: Any = None
        self.eval_blocks: torch.Tensor | None = None
        self.dtypes: dict[str, str] = {}

    # ------------------------------------------------------------------ 1. setup
    def setup(self) -> None:
        """Resolve sources and OUT, read the data, load the models, prepare the optimizer.

        Raises:
            TrainingError: incompatible teacher, bad resume directory.
            DataError: empty or too short data, evaluation text inside the training data.
            OutputExistsError: OUT holds something else.
            ModelSourceError: MODEL or teacher cannot be resolved.
            ConfigError: a dtype the device cannot compute in or too narrow for the weights.
        """
        o = self.options
        if is_quiet():
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # "Loading weights" / "Writing model shards" bars
        self.model_dir = resolve_checkpoint_dir(o.model, revision=o.revision)
        self.teacher_dir = (
            resolve_checkpoint_dir(o.teacher, revision=o.teacher_revision) if o.teacher else None
        )
        self.out, self.resume_ckpt = _prepare_out(o, self.model_dir)
        self.tokenizer = load_tokenizer(self.model_dir, trust_remote_code=o.trust_remote_code)
        if self.teacher_dir is not None:
            check_teacher_compatible(
                self.model_dir,
                self.teacher_dir,
                self.tokenizer,
                trust_remote_code=o.trust_remote_code,
            )
        if o.eval_data is not None:
            overlap = source_files([o.eval_data]) & source_files(o.train_data)
            if overlap:
                raise DataError(
                    f"evaluation text {sorted(overlap)[0]!r} is also in the training data: "
                    "evaluate on held-out text"
                )
        self.accelerator = _make_accelerator(o)
        self.world = self.accelerator.num_processes
        self._setup_data()
        self._setup_models()

    def _setup_data(self) -> None:
        o = self.options
        self.blocks_per_step = o.batch_size * o.grad_accum * self.world
        self.tokens_per_step = self.blocks_per_step * o.seq_len
        max_blocks = None
        if o.train_steps is not None:
            max_blocks = o.train_steps * self.blocks_per_step
        elif o.train_tokens is not None:
            max_blocks = math.ceil(o.train_tokens / self.tokens_per_step) * self.blocks_per_step
        self.data: PackedData = load_packed(
            o.train_data, self.tokenizer, o.seq_len, options=o.data_options, max_blocks=max_blocks
        )
        if o.train_steps is not None:
            self.total_steps = o.train_steps
        elif o.train_tokens is not None:
            self.total_steps = math.ceil(o.train_tokens / self.tokens_per_step)
        else:
            self.total_steps = max(1, self.data.n_blocks // self.blocks_per_step)
        if o.eval_data is not None:
            self.eval_blocks = load_packed(
                [o.eval_data],
                self.tokenizer,
                o.seq_len,
                options=o.data_options,
                max_blocks=o.eval_windows,
                what="evaluation data",
            ).blocks[: o.eval_windows]

    def _load(self, path: Path, dtype: str, role: str) -> Any:
        """The ``role`` model (student, teacher) from ``path`` in ``dtype`` (``auto``: the
        checkpoint's), gradients off."""
        source = checkpoint_dtype(read_config(path))
        chosen = resolve_dtype(dtype, checkpoint=source, device=self.accelerator.device)
        model = load_causal_lm(
            path, dtype=torch_dtype(chosen), trust_remote_code=self.options.trust_remote_code
        )
        check_cast_finite(model.named_parameters(), chosen, source=source)
        self.dtypes[role] = chosen
        return model

    def _setup_models(self) -> None:
        o = self.options
        torch.manual_seed(o.seed)
        student = self._load(self.model_dir, o.dtype, "student")
        student.config.use_cache = False
        model = set_trainable(student, o.trainable, lora_r=o.lora_r, lora_alpha=o.lora_alpha)
        if o.gradient_checkpointing:
            kwargs = {"use_reentrant": False}
            if hasattr(student, "activation_checkpointing_enable"):  # transformers >= 5.24
                student.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                student.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
            if o.trainable != "all":
                student.enable_input_require_grads()
        if self.teacher_dir is not None:
            self.teacher = self._load(self.teacher_dir, o.teacher_dtype, "teacher").eval()
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.n_trainable = sum(p.numel() for p in self.params)
        self.memory = estimate_memory(model, self.teacher)
        if self.accelerator.is_main_process and not is_quiet():
            teacher = "" if self.teacher is None else f", teacher {self.dtypes['teacher']}"
            print(
                f"gqa-retrofit train: {self.memory.describe()}; {self.n_trainable:,} trainable "
                f"parameters; student {self.dtypes['student']}{teacher} on "
                f"{self.accelerator.device}; "
                f"{self.total_steps} steps of {self.tokens_per_step:,} tokens on "
                f"{self.world} process(es)",
                file=sys.stderr,
            )
        optimizer = torch.optim.AdamW(self.params, lr=o.lr, weight_decay=o.weight_decay)
        model.train()
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        if self.teacher is not None:
            self.teacher = place_teacher(self.teacher, self.accelerator)
        self.sharded = _is_sharded(self.accelerator)

    # ------------------------------------------------------------------ 2. resume
    def resume(self) -> None:
        """Restore ``--resume``'s checkpoint, or create OUT; write the run marker.

        Raises:
            TrainingError: the checkpoint was written with other data or batch settings.
        """
        o, acc = self.options, self.accelerator
        self.metrics_path = self.out / METRICS
        if self.resume_ckpt is not None:
            state = load_checkpoint(
                self.resume_ckpt,
                accelerator=acc,
                model=self.model,
                optimizer=self.optimizer,
                sharded=self.sharded,
            )
            for key in _RESUME_KEYS:
                now = self._resume_value(key)
                if state.get(key) != now:
                    raise TrainingError(
                        f"cannot resume from {str(self.resume_ckpt)!r}: {key} was "
                        f"{state.get(key)!r}, now {now!r}; resume with the same data and batch "
                        "settings"
                    )
            self.start_step = int(state["step"])
            self.tokens_done = int(state["tokens"])
            self.losses = list(state.get("losses", []))
            self.evaluations = list(state.get("evaluations", []))
            self.wall_before = float(state.get("wall_seconds", 0.0))
            if acc.is_main_process:
                _truncate_metrics(self.metrics_path, self.start_step)
        elif acc.is_main_process:
            if self.out.exists() and o.overwrite:
                shutil.rmtree(self.out)
            self.out.mkdir(parents=True, exist_ok=True)
        acc.wait_for_everyone()
        self.run_info = {
            "model": o.model,
            "teacher": o.teacher,
            "options": o.to_dict(),
            "data_fingerprint": self.data.fingerprint,
            "total_steps": self.total_steps,
        }
        if acc.is_main_process:
            previous = read_marker(self.out) or {}
            self._mark(previous.get("latest_checkpoint"), self.start_step, complete=False)
        self.trackers_on = bool(o.report_to) and bool(acc.log_with)
        if self.trackers_on:
            acc.init_trackers(
                "gqa-retrofit-train",
                config={
                    k: v for k, v in o.to_dict().items() if isinstance(v, (int, float, str, bool))
                },
            )

    def _resume_value(self, key: str) -> Any:
        values = {
            "data_fingerprint": self.data.fingerprint,
            "blocks_per_step": self.blocks_per_step,
            "seq_len": self.options.seq_len,
            "seed": self.options.seed,
            "trainable": self.options.trainable,
        }
        return values[key]

    def _mark(self, latest: str | None, step: int, *, complete: bool, **extra: Any) -> None:
        write_marker(
            self.out,
            {
                **self.run_info,
                "latest_checkpoint": latest,
                "step": step,
                "complete": complete,
                **extra,
            },
        )

    # ------------------------------------------------------------------ 3. step
    def _micro_batch(self, step: int, micro: int) -> torch.Tensor:
        """The token blocks of micro-batch ``micro`` of ``step`` for this process."""
        o = self.options
        slot = micro * self.world + self.accelerator.process_index
        start = (step - 1) * self.blocks_per_step + slot * o.batch_size
        idx = block_indices(self.data.n_blocks, o.seed, start, o.batch_size)
        return self.data.blocks[idx].to(self.accelerator.device)

    def _forward_backward(self, ids: torch.Tensor, last: bool) -> tuple[Any, bool]:
        """Loss parts of one micro-batch, after its backward pass; and whether it was finite."""
        o, acc = self.options, self.accelerator
        sync = nullcontext() if last or self.world == 1 else acc.no_sync(self.model)
        with sync:
            with acc.autocast():
                logits = self.model(input_ids=ids, use_cache=False).logits
                teacher_logits = None
                if self.teacher is not None:
                    with torch.no_grad():
                        teacher_logits = self.teacher(input_ids=ids, use_cache=False).logits
            parts = training_loss(
                logits,
                ids,
                teacher_logits,
                distill_weight=o.distill_weight,
                temperature=o.temperature,
            )
            finite = bool(torch.isfinite(parts.loss.detach()))
            # backward even on NaN: DDP processes must all join the gradient all-reduce;
            # the step is refused afterwards, before the optimizer touches anything
            acc.backward(parts.loss / o.grad_accum)
        return parts, finite

    def train_step(self, step: int) -> dict[str, Any]:
        """One optimizer step (``grad_accum`` micro-batches on every process); its metrics.

        Raises:
            TrainingError: the loss was NaN/Inf on some process (no weight was changed).
        """
        o = self.options
        sums = torch.zeros(4, dtype=torch.float64, device=self.accelerator.device)
        for micro in range(o.grad_accum):
            ids = self._micro_batch(step, micro)
            parts, finite = self._forward_backward(ids, last=micro == o.grad_accum - 1)
            sums[0] += float(parts.loss.detach()) if finite else 0.0  # loss, ce, kl, nonfinite
            sums[1] += float(parts.ce) if finite else 0.0
            sums[2] += float(parts.kl) if parts.kl is not None and finite else 0.0
            sums[3] += 0.0 if finite else 1.0
            del parts  # free this micro-batch's logits before the next forward
        sums = self.accelerator.reduce(sums, reduction="sum")
        if float(sums[3]) > 0:
            latest = (read_marker(self.out) or {}).get("latest_checkpoint")
            where = (
                f"last good checkpoint: {self.out / latest}"
                if latest
                else "no checkpoint was saved yet"
            )
            raise TrainingError(
                f"loss became NaN/Inf at step {step} (lr {o.lr}): stopped before the "
                f"optimizer step; {where}. Lower --lr or check the model and data"
            )
        lr = o.lr * lr_multiplier(
            step - 1,
            self.total_steps,
            schedule=o.schedule,
            warmup=o.warmup,
            decay_fraction=o.decay_fraction,
            min_lr_ratio=o.min_lr_ratio,
        )
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        grad_norm = None
        if o.max_grad_norm > 0:
            norm = self.accelerator.clip_grad_norm_(
                self.params if not self.sharded else self.model.parameters(), o.max_grad_norm
            )
            grad_norm = None if norm is None else float(norm)  # DeepSpeed clips internally
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.tokens_done += self.tokens_per_step
        denom = o.grad_accum * self.world
        self.losses.append(float(sums[0]) / denom)
        record: dict[str, Any] = {
            "step": step,
            "loss": self.losses[-1],
            "ce": float(sums[1]) / denom,
            "lr": lr,
            "grad_norm": grad_norm,
        }
        if self.teacher is not None:
            record["kl"] = float(sums[2]) / denom
        return record

    # ------------------------------------------------------------------ 4. evaluate, save
    def evaluate(self, step: int) -> dict[str, float]:
        """Held-out loss and perplexity (every process computes the same); recorded at ``step``."""
        if self.eval_blocks is None:
            raise TrainingError("evaluation needs --eval-data")
        result = _evaluate(
            self.model,
            self.eval_blocks,
            self.options.batch_size,
            self.accelerator.device,
            self.accelerator,
        )
        self.evaluations.append({"step": step, **result})
        return result

    def _checkpoint_state(self, step: int, wall: float) -> dict[str, Any]:
        return {
            "step": step,
            "tokens": self.tokens_done,
            "losses": self.losses,
            "evaluations": self.evaluations,
            "wall_seconds": wall,
            **{key: self._resume_value(key) for key in _RESUME_KEYS},
            "total_steps": self.total_steps,
            "data_position": step * self.blocks_per_step,
        }

    def save(self, step: int, wall: float) -> None:
        """Checkpoint ``step`` (all processes call this) and point the marker at it."""
        ckpt = save_checkpoint(
            self.out,
            step,
            accelerator=self.accelerator,
            model=self.model,
            optimizer=self.optimizer,
            state=self._checkpoint_state(step, wall),
            sharded=self.sharded,
            keep=self.options.keep_checkpoints,
        )
        if self.accelerator.is_main_process:
            self._mark(f"checkpoints/{ckpt.name}", step, complete=False)

    # ------------------------------------------------------------------ the loop
    def run(self) -> TrainingReport:
        """``setup``, ``resume``, every remaining step (evaluating and saving on schedule),
        ``finish``."""
        self.setup()
        self.resume()
        o, acc = self.options, self.accelerator
        bar = progress(
            total=self.total_steps,
            initial=self.start_step,
            desc="train",
            unit="step",
            disable=is_quiet() or not acc.is_main_process,
        )
        self.t_start = time.perf_counter()
        self.tokens_at_start = self.tokens_done
        try:
            for step in range(self.start_step + 1, self.total_steps + 1):
                record = self.train_step(step)
                elapsed = time.perf_counter() - self.t_start
                record["tokens"] = self.tokens_done
                record["tokens_per_second"] = (self.tokens_done - self.tokens_at_start) / max(
                    elapsed, 1e-9
                )
                record["elapsed_seconds"] = self.wall_before + elapsed
                due = o.eval_every and step % o.eval_every == 0 and step != self.total_steps
                if self.eval_blocks is not None and due:
                    record.update(self.evaluate(step))
                self._log(step, record, bar)
                if o.save_every and step % o.save_every == 0 and step != self.total_steps:
                    self.save(step, self.wall_before + time.perf_counter() - self.t_start)
        finally:
            bar.close()
        return self.finish()

    def _log(self, step: int, record: dict[str, Any], bar: Any) -> None:
        if self.accelerator.is_main_process:
            _append_metrics(self.metrics_path, record)
        if self.trackers_on:
            self.accelerator.log({k: v for k, v in record.items() if v is not None}, step=step)
        bar.set_postfix(
            loss=f"{record['loss']:.4f}", tok_s=f"{record['tokens_per_second']:.0f}", refresh=False
        )
        bar.update(1)
        if self.on_step is not None:
            self.on_step(step, record)

    # ------------------------------------------------------------------ 5. finish
    def finish(self) -> TrainingReport:
        """Final evaluation, last checkpoint, the plain HF export and the completed marker."""
        o, acc = self.options, self.accelerator
        if self.eval_blocks is not None:
            result = self.evaluate(self.total_steps)
            if acc.is_main_process:
                _append_metrics(self.metrics_path, {"step": self.total_steps, **result})
        run_seconds = time.perf_counter() - self.t_start
        wall = self.wall_before + run_seconds
        report = TrainingReport(
            out=str(self.out),
            model=o.model,
            teacher=o.teacher,
            steps=self.total_steps,
            tokens=self.tokens_done,
            wall_seconds=wall,
            tokens_per_second=(self.tokens_done - self.tokens_at_start) / max(run_seconds, 1e-9),
            first_loss=self.losses[0] if self.losses else None,
            final_loss=self.losses[-1] if self.losses else None,
            losses=self.losses,
            evaluations=self.evaluations,
            data_fingerprint=self.data.fingerprint,
            data_sources=self.data.sources,
            data_record=self.data.record,
            trainable=o.trainable,
            trainable_parameters=self.n_trainable,
            memory=self.memory.to_dict(),
            resumed_from_step=self.start_step if self.resume_ckpt is not None else None,
            num_processes=self.world,
            device=str(acc.device),
            dtypes=self.dtypes,
            options=o.to_dict(),
        )
        if self.start_step < self.total_steps or self.resume_ckpt is None:
            self.save(self.total_steps, wall)
        _export_final(
            self.out,
            accelerator=acc,
            model=self.model,
            tokenizer=self.tokenizer,
            model_dir=self.model_dir,
            trainable=o.trainable,
            report=report,
        )
        if acc.is_main_process:
            self._mark(
                f"checkpoints/step-{self.total_steps:06d}",
                self.total_steps,
                complete=True,
                report=report.record(),
            )
        if self.trackers_on:
            acc.end_training()
        acc.wait_for_everyone()
        return report


def train(options: TrainOptions, *, on_step: StepCallback | None = None) -> TrainingReport:
    """Continue training ``options.model`` (optionally distilling ``options.teacher``).

    Args:
        options: the run's options (validated here).
        on_step: called on every process after each optimizer step with ``(step, metrics)``.

    Returns:
        A :class:`~gqa_retrofit.training.loop.TrainingReport`; OUT holds the final plain HF
        checkpoint, ``metrics.jsonl``, the last checkpoint(s) and, when MODEL had one, the
        manifest with a ``training`` record.

    Raises:
        TrainingError: bad options, incompatible teacher, bad resume directory, NaN/Inf loss.
        DataError: empty data, data shorter than one block, evaluation text in the training data.
        OutputExistsError: OUT holds something else (see ``loop._prepare_out``).
        ModelSourceError: MODEL or teacher cannot be resolved.
        ConfigError: unknown or unavailable device, unknown dtype, a dtype the device cannot
            compute in or too narrow for the checkpoint's values.
    """
    return TrainingRecipe(options, on_step=on_step).run()
