"""``retrofit``: the whole path from a checkpoint to a published, measured retrofit.

Stages (each one records its result in ``OUT/pipeline_state.json``; a rerun resumes):

=================  =========================================================================
``estimate``       costs of the source and of the target geometry (what-if), before any work
``convert``        pooled checkpoint in ``OUT/converted``
``eval_zero_shot`` perplexity of the source and of the converted model on ``eval_data``
``train``          distillation from the source into ``OUT/train`` (resumes from checkpoints)
``eval_trained``   perplexity of the trained model
``bench``          decode speed and measured KV-cache bytes, source vs result
``report``         ``OUT/report.md`` + PNG plots (also copied next to the final model)
``card``           model card (README.md) of the final model, linking the report
``push``           upload of the final model to the Hub
=================  =========================================================================
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from .._fs import portable_paths, portable_text, write_json_atomic
from ..errors import ConfigError
from .options import RetrofitOptions
from .resources import (
    ModelSize,
    copy_seconds,
    decode_seconds,
    forward_seconds,
)
from .stages import Stage, StageContext, StageEstimate, StageRunner

DEFAULT_SAVE_EVERY = 25  # training checkpoints, so an interrupted train stage resumes
MANIFEST = "gqa_retrofit.json"
REPORT_LINK_HEADING = "## Retrofit report"
REPORT_DIR = "report"


@dataclass
class RetrofitResult:
    """What a retrofit run produced: paths and every stage's recorded result."""

    out: Path
    final_model: Path
    converted: Path
    results: dict[str, dict[str, Any]] = field(default_factory=dict)
    plan: list[dict[str, Any]] = field(default_factory=list)

    @property
    def report(self) -> Path:
        return self.out / "report.md"


def build_options(
    src: str,
    out: str,
    *,
    config: str | Path | None = None,
    **values: Any,
) -> RetrofitOptions:
    """Merge a YAML/JSON ``config`` file with explicit values (explicit wins) and validate.

    Raises:
        ConfigError: unknown keys, bad values, missing files.
    """
    return RetrofitOptions.build(src, out, config=config, **values).validate()


def retrofit(
    options: RetrofitOptions | str, out: str | Path | None = None, /, **values: Any
) -> RetrofitResult:
    """Estimate, convert, evaluate, train with distillation, evaluate, benchmark, report, push.

    Everything is checked before the first stage: the options, the source's config and head
    geometry, the method and its data, the data paths, the training options and, with
    ``push``, the Hub token. A run that fails validation writes nothing.

    Args:
        options: the :class:`RetrofitOptions` of the run. The keyword form
            ``retrofit(src, out, kv_heads=1, ..., config=FILE)`` builds them with
            :meth:`RetrofitOptions.build`.
        out, **values: the keyword form only (see above).

    Returns:
        The run's :class:`RetrofitResult` (with ``plan`` filled for a dry run).

    Raises:
        ConfigError: bad options, source config, method or data.
        HubError: ``push`` without a usable Hub token.
        OutputExistsError: ``out`` holds something else, or a run with other options.
    """
    if not isinstance(options, RetrofitOptions):
        options = RetrofitOptions.build(options, out or "", **values)
    options = preflight(options)
    out_path = Path(options.out)
    pipeline = RetrofitPipeline(options)
    runner = StageRunner(
        out_path, pipeline.stages(), options=options.recorded(), overwrite=options.overwrite
    )
    if options.dry_run:
        return RetrofitResult(
            out_path, pipeline.final_model, pipeline.converted, plan=runner.plan()
        )
    results = runner.run()
    return RetrofitResult(out_path, pipeline.final_model, pipeline.converted, results=results)


def preflight(options: RetrofitOptions) -> RetrofitOptions:
    """Check everything a run needs before its first stage; return the resolved options.

    Resolves the calibration text: ``--calibration``, else the ``--train-data`` (announced on
    stderr; the resolved list is what the state, report and manifest record).

    Raises:
        ConfigError: bad options, an output inside the source, an unreadable or invalid source
            config, KV/query heads the source cannot reach, an unknown method, a conversion
            that would silently mean-pool, bad training options, or a push that would publish
            an untrained or mean-pooled model without ``push_untrained``.
        HubError: ``push`` without a Hub token.
    """
    from .._fs import check_output_location
    from .._options import check_output_path
    from .._progress import notice
    from ..conversion.pooling import get_pooling

    options.validate()
    check_output_location(options.out, source=options.src, overwrite=True)
    check_output_path(options.out)
    _check_geometry(options)
    method = options.method
    if method is None and not options.calibration and not options.train_data:
        raise ConfigError(
            "no data for the conversion: pass --calibration TEXT (data-aware conversion) "
            "and/or --train-data DATA (the conversion then calibrates on it), or --method mean "
            "to mean-pool without data"
        )
    data_aware = bool(get_pooling(method).needs_calibration) if method else True
    if not data_aware and options.calibration:
        raise ConfigError(
            f"method {method!r} uses no calibration data: drop --calibration or choose a "
            "data-aware method"
        )
    resolved = options
    if data_aware and not options.calibration and options.train_data:
        resolved = dataclasses.replace(options, calibration=list(options.train_data))
    if resolved.trains:
        resolved.training_options(model=options.src, out=options.out).validate()
    if resolved.push:
        _check_push(resolved, data_aware=data_aware)
    # every check passed: now say what was chosen for the user (a refused run prints one line)
    if resolved is not options:
        notice(
            "no --calibration given: the conversion calibrates on the --train-data ("
            + ", ".join(options.train_data)
            + "); recorded in the run's options, report and manifest"
        )
    elif data_aware and not options.calibration:
        from .options import announce_default_calibration

        announce_default_calibration(method, options.calibration)
    return resolved


def _check_geometry(options: RetrofitOptions) -> None:
    """The source's config is valid (as ``estimate`` reads it), its heads can be pooled to the
    requested numbers and the evaluation windows fit its positions."""
    from ..evaluation.options import check_positions, source_shape

    shape = source_shape(options.src, revision=options.revision)
    if options.eval_data:
        check_positions(options.src, shape, options.eval_seq_len, flag="--eval-seq-len")
    kv = int(options.kv_heads or 0)
    if shape.kv_heads % kv or kv > shape.kv_heads:
        valid = ", ".join(str(k) for k in range(1, shape.kv_heads + 1) if shape.kv_heads % k == 0)
        raise ConfigError(
            f"--kv-heads {kv} is invalid for {options.src!r} ({shape.kv_heads} KV heads): "
            f"choose one of {valid}"
        )
    if options.heads is not None and options.heads > shape.heads:
        raise ConfigError(
            f"--heads {options.heads} is invalid for {options.src!r}: it has {shape.heads} "
            f"query heads; choose at most {shape.heads}"
        )


def _check_push(options: RetrofitOptions, *, data_aware: bool) -> None:
    """Refuse a push that would publish an untrained or mean-pooled model, or has no token."""
    from ..errors import HubError

    weak = [] if options.trains else ["not trained (no --train-data)"]
    if not data_aware:
        weak.append(f"mean-pooled (--method {options.method})")
    if weak and not options.push_untrained:
        raise ConfigError(
            f"--push {options.push} would publish a model that is {' and '.join(weak)}: "
            "train it (--train-data, --train-steps) or pass --push-untrained to publish it anyway"
        )
    from huggingface_hub import get_token

    if not get_token():
        raise HubError(
            f"--push {options.push} needs a Hub token: set HF_TOKEN or run `hf auth login` "
            "(nothing was run)"
        )


class RetrofitPipeline:
    """The stages of one retrofit run, bound to its options."""

    def __init__(self, options: RetrofitOptions) -> None:
        self.options = options
        self.out = Path(options.out)
        self._size: ModelSize | None = None

    # -- paths ---------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """Name of the retrofitted model: ``<source name>-kv<K>[-h<H>]``."""
        o = self.options
        base = Path(o.src.rstrip("/")).name or "model"
        return f"{base}-kv{o.kv_heads}" + (f"-h{o.heads}" if o.heads else "")

    @property
    def converted(self) -> Path:
        """The converted checkpoint (the final model when there is no training)."""
        if self.options.trains:
            return self.out / f"{self.model_name}-converted"
        return self.out / self.model_name

    @property
    def trained(self) -> Path:
        return self.out / self.model_name

    @property
    def final_model(self) -> Path:
        return self.trained if self.options.trains else self.converted

    # -- stage list ----------------------------------------------------------------------
    def stages(self) -> list[Stage]:
        o = self.options
        no_eval = None if o.eval_data else "no --eval-data given"
        no_train = None if o.trains else "no --train-data given (or 0 steps)"
        no_probes = None if o.retrieval_options() else "no --probes given"
        return [
            Stage(
                "estimate",
                "costs of the source and the target geometry (what-if)",
                self.run_estimate,
                estimate=lambda: StageEstimate(1.0, 200 * 1024**2),
            ),
            Stage(
                "convert",
                f"pool to {o.kv_heads} KV heads"
                + (f" and {o.heads} query heads" if o.heads else "")
                + f" ({o.method or 'default method'})",
                self.run_convert,
                estimate=self.estimate_convert,
            ),
            Stage(
                "eval_zero_shot",
                "perplexity of source and converted model",
                self.run_eval_zero_shot,
                estimate=self.estimate_eval_zero_shot,
                skip=no_eval,
            ),
            Stage(
                "probe_zero_shot",
                "in-context retrieval probes of source and converted model",
                self.run_probe_zero_shot,
                estimate=lambda: self.estimate_retrieval(2),
                skip=no_probes,
            ),
            Stage(
                "train",
                "distillation from the source"
                if o.teacher == "auto"
                else "fine-tuning without a teacher",
                self.run_train,
                estimate=self.estimate_train,
                makes_dir=True,
                keep_partial=True,
                skip=no_train,
                dir_name=self.trained.name,
            ),
            Stage(
                "eval_trained",
                "perplexity of the trained model",
                self.run_eval_trained,
                estimate=self.estimate_eval_trained,
                skip=no_eval if o.trains else (no_eval or no_train),
            ),
            Stage(
                "probe_trained",
                "in-context retrieval probes of the trained model",
                self.run_probe_trained,
                estimate=lambda: self.estimate_retrieval(1),
                skip=no_probes or no_train,
            ),
            Stage(
                "bench",
                "decode speed and measured KV-cache bytes, source vs result",
                self.run_bench,
                estimate=self.estimate_bench,
            ),
            Stage(
                "report",
                "report.md and plots",
                self.run_report,
                estimate=lambda: StageEstimate(5.0, 300 * 1024**2),
            ),
            Stage(
                "card",
                "model card of the final model",
                self.run_card,
                estimate=lambda: StageEstimate(2.0, 200 * 1024**2),
            ),
            Stage(
                "push",
                f"upload to the Hub as {o.push}" if o.push else "upload to the Hub",
                self.run_push,
                estimate=self.estimate_push,
                skip=None if o.push else "no --push given",
            ),
        ]

    # -- size of the source, for estimates ---------------------------------------------
    def source_size(self) -> ModelSize:
        """Parameters, dtype and head geometry of the source (from its config only)."""
        if self._size is None:
            report = self._estimate_dict(self.options.src, contexts=(1,), dtype="fp32")
            attention = report["attention"]
            bytes_per_param = _config_dtype_bytes(self.options.src, self.options.revision)
            self._size = ModelSize(
                params=int(report["params"]["total"]),
                bytes_per_param=bytes_per_param,
                kv_bytes_per_token=int(report["kv_cache_bytes_per_token"]),
                layers=int(attention["layers"]),
                heads=int(attention["heads"]),
                head_dim=int(attention["head_dim"]),
            )
        return self._size

    def _estimate_dict(self, model: str, **kwargs: Any) -> dict[str, Any]:
        from ..cost import estimate

        result: dict[str, Any] = estimate(model, revision=self.options.revision, **kwargs).to_dict()
        return result

    # -- stages --------------------------------------------------------------------------
    def run_estimate(self, ctx: StageContext) -> dict[str, Any]:
        from ..cost import estimate

        o = self.options
        source = estimate(o.src, contexts=tuple(o.contexts), revision=o.revision)
        heads = o.heads or source.shape.heads
        report = estimate(
            o.src,
            contexts=tuple(o.contexts),
            what_if=[(heads, cast(int, o.kv_heads))],
            revision=o.revision,
        )
        data: dict[str, Any] = portable_paths(report.to_dict(), self.out)  # no local paths
        (self.out / "estimate.json").write_text(json.dumps(data, indent=2) + "\n", "utf-8")
        markdown = portable_text(report.to_markdown(), self.out)
        (self.out / "estimate.md").write_text(markdown + "\n", "utf-8")
        target = data["what_if"][0]
        return {
            "file": "estimate.json",
            "kv_cache_bytes_per_token": {
                "source": data["kv_cache_bytes_per_token"],
                "target": target["kv_cache_bytes_per_token"],
            },
            "params": {"source": data["params"]["total"], "target": target["params"]["total"]},
            "savings_percent": target["per_context"][-1].get("savings_percent", {}),
            "context": data["per_context"][-1]["context"],
        }

    def run_convert(self, ctx: StageContext) -> dict[str, Any]:
        from ..conversion.convert import convert_checkpoint

        o = self.options
        kwargs: dict[str, Any] = {}
        if o.calibration:
            kwargs["calibration"] = list(o.calibration)
        if o.calibration_tokens is not None:
            kwargs["calibration_tokens"] = o.calibration_tokens
        report = convert_checkpoint(
            o.src,
            self.converted,
            kv_heads=cast(int, o.kv_heads),  # validated
            heads=o.heads,
            method=o.method,
            dtype="keep" if o.dtype == "auto" else o.dtype,
            data_options=o.data_options,
            device=o.device,
            revision=o.revision,
            base_model=o.base_model,
            overwrite=True,  # only a leftover of this very stage can be there
            **kwargs,
        )
        return {"path": self.converted.name, "report": _to_jsonable(report)}

    def _perplexity(self, model: str | Path) -> dict[str, Any]:
        from ..evaluation.perplexity import evaluate_perplexity

        o = self.options
        revision = o.revision if str(model) == o.src else None  # only SRC can be a Hub id
        assert o.eval_data is not None
        result = evaluate_perplexity(
            str(model),
            o.eval_data,
            seq_len=o.eval_seq_len,
            max_windows=o.eval_windows,
            dtype="fp32",  # the measured numbers of the docs are fp32
            device=o.device,
            revision=revision,
            trust_remote_code=o.trust_remote_code,
            data_options=o.data_options,
        )
        data = _to_jsonable(result)
        return data if isinstance(data, dict) else {"perplexity": data}

    def _retrieval(self, model: str | Path) -> dict[str, Any]:
        from ..evaluation.retrieval import evaluate_retrieval

        o = self.options
        found = evaluate_retrieval(
            str(model),
            options=o.retrieval_options(),
            revision=o.revision if str(model) == o.src else None,  # only SRC can be a Hub id
            trust_remote_code=o.trust_remote_code,
        )
        return found.to_dict()

    def run_probe_zero_shot(self, ctx: StageContext) -> dict[str, Any]:
        return {
            "source": self._retrieval(self.options.src),
            "converted": self._retrieval(self.converted),
        }

    def run_probe_trained(self, ctx: StageContext) -> dict[str, Any]:
        return {"trained": self._retrieval(self.trained)}

    def estimate_retrieval(self, models: int) -> StageEstimate:
        """Forward passes over the probes' tokens (passkey prompts, copy spans, long windows)."""
        from ..evaluation.retrieval_passkey import default_lengths

        probes = self.options.retrieval_options()
        assert probes is not None
        size = self.source_size()
        config = self._estimate_dict(self.options.src, contexts=(1,), dtype="fp32")
        limit = config.get("max_position_embeddings")
        lengths = list(probes.passkey_lengths or default_lengths(limit))
        prompts = len(probes.passkey_depths) * probes.passkey_trials
        seconds = 0.0
        if "passkey" in probes.probes:
            for n in lengths:
                seconds += prompts * forward_seconds(size, n, context=n)
        if "copy" in probes.probes:
            n = 2 * probes.copy_span
            seconds += probes.copy_trials * forward_seconds(size, n, context=n)
        if "long-ppl" in probes.probes:
            n = probes.long_seq_len or int(limit or 2)
            seconds += probes.long_windows * forward_seconds(size, n, context=n)
        return StageEstimate(models * seconds, size.weight_bytes + 2 * 1024**3)

    def run_eval_zero_shot(self, ctx: StageContext) -> dict[str, Any]:
        return {
            "source": self._perplexity(self.options.src),
            "converted": self._perplexity(self.converted),
        }

    def run_train(self, ctx: StageContext) -> dict[str, Any]:
        from ..training import train

        o = self.options
        values: dict[str, Any] = {"save_every": DEFAULT_SAVE_EVERY, **o.train}
        values.update(
            model=str(self.converted),
            out=str(ctx.stage_dir),
            teacher=o.src if o.teacher == "auto" else None,
        )
        checkpoints = ctx.stage_dir / "checkpoints"
        if checkpoints.is_dir() and any(checkpoints.iterdir()):
            values["resume"] = "latest"  # an interrupted earlier attempt of this stage
        else:
            shutil.rmtree(ctx.stage_dir)
            ctx.stage_dir.mkdir()
        report = train(o.training_options(**values).validate())
        # the run is complete: optimizer states are no longer needed and must not be pushed
        shutil.rmtree(checkpoints, ignore_errors=True)
        record = _to_jsonable(report.record())
        record["out"] = str(self.trained)  # where it lives once the stage is done
        manifest_path = ctx.stage_dir / MANIFEST
        if manifest_path.is_file():
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            if isinstance(manifest.get("training"), dict):
                manifest["training"]["out"] = "."  # the manifest lives in that folder
                write_json_atomic(manifest_path, manifest)
        return {"path": self.trained.name, "report": record}

    def run_eval_trained(self, ctx: StageContext) -> dict[str, Any]:
        return {"trained": self._perplexity(self.trained)}

    def run_bench(self, ctx: StageContext) -> dict[str, Any]:
        from ..evaluation.bench import benchmark_decode
        from ..sources import resolve_checkpoint_dir

        o = self.options
        source = resolve_checkpoint_dir(o.src, revision=o.revision)
        results = benchmark_decode(
            [str(source), str(self.final_model)],
            contexts=tuple(o.bench_contexts),
            new_tokens=o.bench_new_tokens,
            repeats=o.bench_repeats,
            names=["source", "retrofit"],
            dtype="fp32",
            device=o.device,
            trust_remote_code=o.trust_remote_code,
        )
        return {"results": results}

    def run_report(self, ctx: StageContext) -> dict[str, Any]:
        from .report import write_report

        files = write_report(self.out, self.options, ctx.results, final_model=self.final_model)
        return {"files": files}

    def run_card(self, ctx: StageContext) -> dict[str, Any]:
        from ..hub.card import write_card

        add_evaluations(self.final_model, self.evaluations(ctx.results))
        path = write_card(self.final_model, repo_id=self.options.push)
        link_report(path)
        return {"card": str(Path(path).relative_to(self.out))}

    def evaluations(self, results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        """Perplexity records (``gqa_retrofit.json`` "evaluations") of the evaluated models."""
        o = self.options
        records = []
        for stage in ("eval_zero_shot", "eval_trained"):
            for model, value in results.get(stage, {}).items():
                if isinstance(value, dict) and "perplexity" in value:
                    records.append(
                        {
                            "model": "source" if model == "source" else model,
                            "dataset": Path(o.eval_data or "text").stem,
                            "metric": "perplexity",
                            "value": value["perplexity"],
                            "windows": value.get("windows"),
                            "seq_len": value.get("seq_len"),
                            "tokens": value.get("tokens"),
                        }
                    )
        from ..evaluation.retrieval_verdict import evaluation_records
        from .report import retrieval_results

        for model, value in retrieval_results(results).items():
            records += evaluation_records(model, value)
        return records

    def run_push(self, ctx: StageContext) -> dict[str, Any]:
        from .._progress import notice
        from ..hub.push import push_to_hub
        from .report import retrieval_lost

        o = self.options
        assert o.push is not None
        lost = retrieval_lost(ctx.results)
        if lost:
            notice(f"warning: pushing {self.final_model.name}, whose {lost}")
        url = push_to_hub(self.final_model, o.push, private=o.private)
        return {"url": str(url)}

    # -- estimates -----------------------------------------------------------------------
    def estimate_convert(self) -> StageEstimate:
        size = self.source_size()
        seconds = copy_seconds(size)
        note = ""
        if self.options.calibration:
            from ..conversion.convert import DEFAULT_CALIBRATION_TOKENS

            tokens = self.options.calibration_tokens or DEFAULT_CALIBRATION_TOKENS
            # the original and the converted stream (2 passes) plus the methods' fits (make demo,
            # 16,384 tokens, 2 cores: 70 s measured, 66 s planned; demo_run_stages.json)
            seconds += forward_seconds(size, tokens, context=512, passes=2.0)
            note = "with calibration"
        return StageEstimate(seconds, size.weight_bytes // size.layers * 4 + 512 * 1024**2, note)

    def _eval_tokens(self) -> int:
        return self.options.eval_windows * self.options.eval_seq_len

    def estimate_eval_zero_shot(self) -> StageEstimate:
        size = self.source_size()
        seconds = 2 * forward_seconds(size, self._eval_tokens(), context=self.options.eval_seq_len)
        return StageEstimate(seconds, size.weight_bytes + 1024**3)

    def estimate_eval_trained(self) -> StageEstimate:
        size = self.source_size()
        seconds = forward_seconds(size, self._eval_tokens(), context=self.options.eval_seq_len)
        return StageEstimate(seconds, size.weight_bytes + 1024**3)

    def estimate_train(self) -> StageEstimate:
        size = self.source_size()
        o = self.options
        seq_len = int(o.train.get("seq_len", 512))
        batch = int(o.train.get("batch_size", 4)) * int(o.train.get("grad_accum", 1))
        block_tokens = seq_len * batch
        if o.train_tokens is not None:
            tokens = o.train_tokens
        else:
            tokens = (o.train_steps or 100) * block_tokens
        # student forward + backward and a teacher forward (1 pass). The backward is 2 passes
        # when every weight trains, about 1 when only attention or LoRA adapters do (input
        # gradients only through the rest). make demo (attention, teacher, 40 steps of 4 x 256
        # tokens, 2 cores): 3.8 min measured, 3.6 min planned (demo_run_stages.json).
        from ..training.options import TrainOptions

        backward = 2.0 if o.train.get("trainable", TrainOptions.trainable) == "all" else 1.0
        passes = 1.0 + backward + (1.0 if o.teacher == "auto" else 0.0)
        seconds = forward_seconds(size, tokens, context=seq_len, passes=passes)
        # weights + grads + AdamW moments of the student, teacher weights, activations
        memory = size.params * 4 * 4 + size.weight_bytes + 2 * 1024**3
        note = "" if o.train_steps or o.train_tokens else "assumes 100 steps"
        return StageEstimate(seconds, memory, note)

    def estimate_bench(self) -> StageEstimate:
        size = self.source_size()
        o = self.options
        runs = 2 * o.bench_repeats
        seconds = 0.0
        for context in o.bench_contexts:
            seconds += runs * (
                forward_seconds(size, context, context=context)
                + decode_seconds(size, o.bench_new_tokens)
            )
        cache = size.kv_bytes_per_token * (max(o.bench_contexts) + o.bench_new_tokens)
        return StageEstimate(seconds, 2 * size.weight_bytes + cache + 512 * 1024**2)

    def estimate_push(self) -> StageEstimate:
        size = self.source_size()
        return StageEstimate(size.weight_bytes / 20e6, 300 * 1024**2, "at 20 MB/s upload")


def _config_dtype_bytes(src: str, revision: str | None = None) -> int:
    """Bytes per weight value of the source checkpoint (from ``config.json``; fp32 if unset)."""
    from ..devices import DEFAULT_CHECKPOINT_DTYPE, DTYPE_BYTES, checkpoint_dtype
    from ..sources import resolve_config_file

    config = json.loads(resolve_config_file(src, revision=revision).read_text(encoding="utf-8"))
    return DTYPE_BYTES[checkpoint_dtype(config) or DEFAULT_CHECKPOINT_DTYPE]


def _to_jsonable(value: Any) -> Any:
    """A JSON-able view of a report object (``to_dict()``, dataclass, or plain value)."""
    import dataclasses

    if hasattr(value, "to_dict"):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return json.loads(json.dumps(dataclasses.asdict(value), default=str))
    return json.loads(json.dumps(value, default=str))


def add_evaluations(model_dir: Path, records: list[dict[str, Any]]) -> None:
    """Set the ``evaluations`` of a checkpoint's manifest (the card renders them)."""
    path = model_dir / MANIFEST
    manifest = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    manifest["evaluations"] = records
    write_json_atomic(path, manifest)


def link_report(card: Path) -> None:
    """Append a link to the retrofit report below the generated card section (once)."""
    from .report import CARD_REPORT, PLOTS

    text = card.read_text(encoding="utf-8")
    if REPORT_LINK_HEADING in text:
        return
    text = (
        text.rstrip("\n")
        + f"\n\n{REPORT_LINK_HEADING}\n\n"
        + f"The full before/after report of this retrofit: [{CARD_REPORT}]({CARD_REPORT}) "
        + f"(plots in [`{PLOTS}/`]({PLOTS}/)).\n"
    )
    card.write_text(text, encoding="utf-8")
