"""``demo``: the retrofit of the embedded SmolLM2-135M from 3 to 1 KV heads, with a summary.

The demo is one :func:`~gqa_retrofit.pipeline.retrofit.retrofit` run on the embedded default
model and text (see ``shared/notes/assets.md``): the best data-aware conversion calibrated on the
training novels, a short distillation run on the same novels, perplexity on *Persuasion* (never
trained on), the decode benchmark at 2K context, then greedy continuations of one prompt from the
original, the converted and the trained model. The default budget (40 steps) finished in under
7 minutes on 2 CPU cores (docs/demo.md).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._fs import write_json_atomic
from .retrofit import RetrofitResult, retrofit

DEMO_PROMPT = "It was a fine morning in Bath, and Anne Elliot"
DEMO_KV_HEADS = 1
DEMO_TRAIN_STEPS = 40  # ~5 s per step on 2 CPU cores: the whole demo in ~7 minutes (docs/demo.md)
DEMO_TRAIN = {"seq_len": 256, "batch_size": 4, "lr": 1e-4, "warmup": 10}


@dataclass
class DemoSummary:
    """The numbers the demo prints (also written to ``OUT/summary.json``)."""

    out: str
    final_model: str
    report: str
    card: str
    perplexity: dict[str, float]
    kv_bytes_per_token: dict[str, int]
    kv_bytes: dict[str, dict[str, int]]  # model -> {"8K": bytes, "128K": bytes}
    decode_tokens_per_second: dict[str, float]
    bench_context: int
    continuations: dict[str, str]
    prompt: str
    seconds: dict[str, float] = field(default_factory=dict)
    # retrieval probes per model ("original", "converted", "trained"): their summary() dicts
    retrieval: dict[str, dict[str, Any]] = field(default_factory=dict)
    retrieval_verdict: str | None = None  # the final model's kept/lost sentence

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def best_method() -> str:
    """Registry name of the best data-aware conversion method (the converter's choice)."""
    from ..conversion.convert import DEFAULT_CALIBRATED_METHOD

    return str(DEFAULT_CALIBRATED_METHOD)


def method_needs_calibration(method: str) -> bool:
    """True when the registered pooling ``method`` is data-aware (takes calibration text)."""
    from ..conversion.pooling import get_pooling

    return bool(get_pooling(method).needs_calibration)


def greedy_continuation(model_dir: str | Path, prompt: str, *, new_tokens: int = 40) -> str:
    """The greedy continuation (decoded text, prompt excluded) of ``prompt`` by a checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..evaluation.generation import greedy_continuations

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    return greedy_continuations(model, tokenizer, [prompt], new_tokens=new_tokens).samples[0].text


def demo(
    out: str | Path = "demo-output",
    *,
    train_steps: int = DEMO_TRAIN_STEPS,
    train: dict[str, Any] | None = None,
    calibration_tokens: int | None = None,
    eval_windows: int = 16,
    eval_seq_len: int = 512,
    bench_contexts: tuple[int, ...] = (2048,),
    bench_repeats: int = 3,
    bench_new_tokens: int = 32,
    prompt: str = DEMO_PROMPT,
    continuation_tokens: int = 40,
    method: str | None = None,
    train_data: list[str] | None = None,
    dry_run: bool = False,
    overwrite: bool = False,
) -> DemoSummary | RetrofitResult:
    """Run the demo retrofit into ``out`` and summarise it.

    Args:
        out: output directory (resumable like every retrofit run).
        train_steps: distillation steps (the default fits the ~15 minute budget on 2 cores).
        train: training options for the run (default :data:`DEMO_TRAIN`).
        calibration_tokens: calibration budget of the conversion (converter default if None).
        eval_windows: evaluation windows of ``eval_seq_len`` tokens on *Persuasion*.
        eval_seq_len: tokens per evaluation window.
        bench_contexts: decode benchmark contexts.
        bench_repeats: benchmark runs per model.
        bench_new_tokens: decode steps per benchmark run.
        prompt: the prompt every model continues.
        continuation_tokens: tokens of each greedy continuation.
        method: conversion method (default: :func:`best_method`).
        train_data: training and calibration text (default: the four training novels).
        dry_run: return the plan only (a :class:`RetrofitResult` with ``plan``).
        overwrite: start over in ``out``.

    Returns:
        A :class:`DemoSummary` (or the plan's :class:`RetrofitResult` for a dry run).

    Raises:
        AssetError: the embedded model or text cannot be built.
        OutputExistsError: ``out`` holds something else.
    """
    import time

    from ..assets import default_corpus, default_model_dir

    start = time.perf_counter()
    source = default_model_dir()
    corpus = default_corpus(ood=False)
    train_data = list(train_data) if train_data else [str(p) for p in corpus.train]
    method = method or best_method()
    calibrated = method_needs_calibration(method)
    result = retrofit(
        str(source),
        str(out),
        kv_heads=DEMO_KV_HEADS,
        method=method,
        calibration=train_data if calibrated else None,
        calibration_tokens=calibration_tokens if calibrated else None,
        train_data=train_data,
        train_steps=train_steps,
        teacher="auto",
        eval_data=str(corpus.test),
        eval_windows=eval_windows,
        eval_seq_len=eval_seq_len,
        bench_contexts=list(bench_contexts),
        bench_repeats=bench_repeats,
        bench_new_tokens=bench_new_tokens,
        train=dict(DEMO_TRAIN if train is None else train),
        dry_run=dry_run,
        overwrite=overwrite,
    )
    if dry_run:
        return result
    pipeline_seconds = time.perf_counter() - start
    summary = summarize(result, source=source, prompt=prompt, new_tokens=continuation_tokens)
    summary.seconds = {
        "pipeline": round(pipeline_seconds, 1),
        "total": round(time.perf_counter() - start, 1),
    }
    write_json_atomic(Path(out) / "summary.json", summary.to_dict())
    return summary


def summarize(result: RetrofitResult, *, source: Path, prompt: str, new_tokens: int) -> DemoSummary:
    """Collect the demo's numbers from a finished run and generate the continuations."""
    from .report import cost_curves, perplexities, retrieval_results, retrieval_verdicts

    results = result.results
    curves = {"original": cost_curves(source), "retrofit": cost_curves(result.final_model)}
    kv_bytes: dict[str, dict[str, int]] = {}
    for name, curve in curves.items():
        by_context = dict(zip(curve["contexts"], curve["kv_cache_bytes"]))
        kv_bytes[name] = {"8K": by_context[8192], "128K": by_context[131072]}
    bench = results.get("bench", {}).get("results", [])
    context = min((row["context"] for row in bench), default=0)
    speed = {
        ("original" if row["model"] == "source" else "retrofit"): row["decode_tokens_per_second"]
        for row in bench
        if row["context"] == context
    }
    models = {"original": source, "converted": result.converted}
    if result.final_model != result.converted:
        models["trained"] = result.final_model
    continuations = {
        name: greedy_continuation(path, prompt, new_tokens=new_tokens)
        for name, path in models.items()
    }
    retrieval = {
        ("original" if name == "source" else name): dict(value["summary"])
        for name, value in retrieval_results(results).items()
    }
    verdicts = retrieval_verdicts(results)
    final = verdicts.get("trained") or verdicts.get("converted")
    ppl = perplexities(results)
    if "source" in ppl:
        ppl["original"] = ppl.pop("source")
    return DemoSummary(
        out=str(result.out),
        final_model=str(result.final_model),
        report=str(result.report),
        card=str(result.final_model / "README.md"),
        perplexity={k: ppl[k] for k in ("original", "converted", "trained") if k in ppl},
        kv_bytes_per_token={k: c["kv_cache_bytes_per_token"] for k, c in curves.items()},
        kv_bytes=kv_bytes,
        decode_tokens_per_second=speed,
        bench_context=context,
        continuations=continuations,
        prompt=prompt,
        retrieval=retrieval,
        retrieval_verdict=None if final is None else final.sentence(),
    )


def retrieval_table(retrieval: dict[str, dict[str, Any]]) -> list[str]:
    """The demo's passkey ladder and copy probe, one row per model (empty when none ran)."""
    if not retrieval:
        return []
    lengths = sorted(
        {int(n) for summary in retrieval.values() for n in summary.get("passkey_success", {})}
    )
    header = "".join(f"{f'{n // 1024}K' if n % 1024 == 0 else n:>7}" for n in lengths)
    lines = [
        "In-context retrieval: passkey success by prompt length (filler haystack), and the",
        "copy-probe loss on the second copy of 256 random tokens (nats, lower is better):",
        f"  {'':<10}{header}{'copy':>8}",
    ]
    for name, summary in retrieval.items():
        rates = summary.get("passkey_success", {})
        cells = "".join(
            f"{f'{100 * rates[str(n)]:.0f}%' if str(n) in rates else '':>7}" for n in lengths
        )
        copy = summary.get("copy_second_copy_loss")
        lines.append(f"  {name:<10}{cells}{'' if copy is None else f'{copy:.2f}':>8}".rstrip())
    return lines


def format_summary(summary: DemoSummary) -> str:
    """The demo's printed summary."""
    s = summary
    lines = ["", "=== gqa-retrofit demo: SmolLM2-135M, 3 -> 1 KV heads ===", ""]
    if s.perplexity:
        lines.append("Perplexity on Persuasion (never trained on):")
        for name, value in s.perplexity.items():
            lines.append(f"  {name:<10} {value:>10,.2f}")
        lines.append("")
    lines.append("KV cache (bf16, batch 1):      original      retrofit")
    lines.append(
        f"  bytes per token         {s.kv_bytes_per_token['original']:>12,}  "
        f"{s.kv_bytes_per_token['retrofit']:>12,}"
    )
    for key in ("8K", "128K"):
        lines.append(
            f"  at {key:<5} context        {s.kv_bytes['original'][key] / 2**20:>10,.1f} MiB"
            f"  {s.kv_bytes['retrofit'][key] / 2**20:>8,.1f} MiB"
        )
    if s.decode_tokens_per_second:
        original = s.decode_tokens_per_second.get("original", 0.0)
        retro = s.decode_tokens_per_second.get("retrofit", 0.0)
        ratio = f" ({retro / original:.2f}x)" if original else ""
        lines += [
            "",
            f"Decode speed at {s.bench_context:,} context (fp32, median tokens/s):",
            f"  original {original:.2f}   retrofit {retro:.2f}{ratio}",
        ]
    table = retrieval_table(s.retrieval)
    if table:
        lines += ["", *table]
        if s.retrieval_verdict:
            lines.append(f"  {s.retrieval_verdict}")
    lines += ["", f"Greedy continuations of: {s.prompt!r}"]
    for name, text in s.continuations.items():
        lines.append(f"  [{name}] {json.dumps(text, ensure_ascii=False)}")
    lines += [
        "",
        f"Report:  {s.report} (plots in {Path(s.report).parent / 'report'})",
        f"Card:    {s.card}",
        f"Model:   {s.final_model}",
    ]
    if s.seconds:
        lines.append(f"Time:    {s.seconds['total'] / 60:.1f} min")
    return "\n".join(lines)
