"""The retrofit report: ``OUT/report.md`` and its PNG plots, from the recorded stage results.

Everything in the report comes from the stage results recorded in ``pipeline_state.json`` and
the training metrics; nothing is re-measured here except the cost curves, which the estimator
computes from the two configs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..conversion.layer_errors import PLOT as LAYER_PLOT
from ..conversion.layer_errors import manifest_errors, plot_layer_errors, report_lines
from .options import RetrofitOptions

PLOTS = "report"
REPORT = "report.md"
CARD_REPORT = "retrofit_report.md"  # name of the copy next to the final model
CURVE_CONTEXTS = tuple(2**k for k in range(9, 18))  # 512 .. 131072


def _fmt_bytes(value: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:,.0f} {unit}" if unit == "B" else f"{value:,.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def perplexities(results: dict[str, dict[str, Any]]) -> dict[str, float]:
    """``{"source": ppl, "converted": ppl, "trained": ppl}`` for the evaluations that ran."""
    found: dict[str, float] = {}
    for stage in ("eval_zero_shot", "eval_trained"):
        for name, value in results.get(stage, {}).items():
            if isinstance(value, dict) and "perplexity" in value:
                found[name] = float(value["perplexity"])
    return found


RETRIEVAL_STAGES = ("probe_zero_shot", "probe_trained")
RETRIEVAL_PLOT = "retrieval.png"


def retrieval_results(results: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """``{"source": ..., "converted": ..., "trained": ...}`` retrieval results that ran."""
    found: dict[str, dict[str, Any]] = {}
    for stage in RETRIEVAL_STAGES:
        for name, value in results.get(stage, {}).items():
            if isinstance(value, dict) and "summary" in value:
                found[name] = value
    return found


def retrieval_verdicts(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The kept/lost verdict of the converted and the trained model against the source."""
    from ..evaluation.retrieval_verdict import judge_retrieval

    found = retrieval_results(results)
    if "source" not in found:
        return {}
    return {
        name: judge_retrieval(found["source"], found[name])
        for name in ("converted", "trained")
        if name in found
    }


def retrieval_lost(results: dict[str, dict[str, Any]]) -> str | None:
    """The reason retrieval was lost by the final model (trained, else converted), or None."""
    verdicts = retrieval_verdicts(results)
    final = verdicts.get("trained") or verdicts.get("converted")
    return final.sentence() if final is not None and final.kept is False else None


def retrieval_lines(results: dict[str, dict[str, Any]]) -> list[str]:
    """The report's "In-context retrieval" section (empty when no probe ran)."""
    found = retrieval_results(results)
    if not found:
        return []
    names = [n for n in ("source", "converted", "trained") if n in found]
    rows: list[tuple[str, list[str]]] = []
    lengths: dict[int, bool] = {}
    for name in names:
        for row in (found[name].get("passkey") or {}).get("lengths", []):
            lengths[row["length"]] = (
                lengths.get(row["length"], False) or row["beyond_position_limit"]
            )
    for length, beyond in sorted(lengths.items()):
        cells = []
        for name in names:
            rate = found[name]["summary"].get("passkey_success", {}).get(str(length))
            cells.append("" if rate is None else f"{100 * rate:.0f}%")
        flag = " (beyond the position limit)" if beyond else ""
        rows.append((f"passkey retrieval at {length:,} tokens{flag}", cells))
    copies: dict[str, dict[str, Any]] = {n: found[n]["copy"] for n in names if found[n].get("copy")}
    if copies:
        chance = next(iter(copies.values()))["chance_loss"]
        rows.append(
            (
                f"copy probe: loss on the second copy (nats; chance {chance:.2f})",
                [f"{copies[n]['second_copy_loss']:.2f}" if n in copies else "" for n in names],
            )
        )
        rows.append(
            (
                "copy probe: second / first copy",
                [f"{copies[n]['relative_loss']:.2f}" if n in copies else "" for n in names],
            )
        )
    longs: dict[str, dict[str, Any]] = {
        n: found[n]["long_window"] for n in names if found[n].get("long_window")
    }
    if longs:
        first = next(iter(longs.values()))
        rows.append(
            (
                f"perplexity over {first['windows']} window(s) of {first['seq_len']:,} tokens",
                [f"{longs[n]['perplexity']:,.2f}" if n in longs else "" for n in names],
            )
        )
    lines = [
        "## In-context retrieval",
        "",
        "Passkey retrieval, the copy probe and long-window perplexity (docs/retrieval.md), "
        "same prompts and seed for every model:",
        "",
        "| probe | " + " | ".join(names) + " |",
        "|---|" + "---:|" * len(names),
    ]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    lines.append("")
    for label, verdict in retrieval_verdicts(results).items():
        lines.append(f"- {label}: {verdict.sentence()}")
    lines += ["", f"![retrieval]({PLOTS}/{RETRIEVAL_PLOT})", ""]
    return lines


def _plot_retrieval(results: dict[str, dict[str, Any]], path: Path) -> bool:
    from ..evaluation.retrieval import RetrievalResult, plot_retrieval

    found = retrieval_results(results)
    if not found:
        return False
    plot_retrieval({k: RetrievalResult.from_dict(v) for k, v in found.items()}, path)
    return True


def cost_curves(model: str | Path, contexts: tuple[int, ...] = CURVE_CONTEXTS) -> dict[str, Any]:
    """KV-cache bytes and decode FLOPs per context from the estimator (bf16 cache)."""
    from ..cost import estimate

    data = estimate(str(model), contexts=contexts).to_dict()
    rows = data["per_context"]
    return {
        "contexts": [int(r["context"]) for r in rows],
        "kv_cache_bytes": [int(r["kv_cache_bytes"]) for r in rows],
        "decode_flops": [float(r["decode_flops"]) for r in rows],
        "memory_bytes": [int(r["memory_bytes"]) for r in rows],
        "kv_cache_bytes_per_token": int(data["kv_cache_bytes_per_token"]),
        "params": int(data["params"]["total"]),
    }


def training_curve(metrics_file: Path) -> list[dict[str, float]]:
    """``[{"step", "loss"}, ...]`` from a training ``metrics.jsonl`` (empty when absent)."""
    if not metrics_file.is_file():
        return []
    points = []
    for line in metrics_file.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(row, dict) and "step" in row and "loss" in row:
            point = {"step": float(row["step"]), "loss": float(row["loss"])}
            for key in ("eval_loss", "eval_perplexity"):
                if key in row and row[key] is not None:
                    point[key] = float(row[key])
            points.append(point)
    return points


def _plot_costs(source: dict[str, Any], target: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_kv, ax_flops) = plt.subplots(1, 2, figsize=(10, 4))
    for label, curve in (("source", source), ("retrofit", target)):
        ax_kv.plot(
            curve["contexts"], [b / 2**20 for b in curve["kv_cache_bytes"]], "o-", label=label
        )
        ax_flops.plot(
            curve["contexts"], [f / 1e9 for f in curve["decode_flops"]], "o-", label=label
        )
    ax_kv.set(
        xscale="log",
        yscale="log",
        xlabel="context (tokens)",
        ylabel="KV cache (MiB, bf16, batch 1)",
        title="KV-cache memory",
    )
    ax_flops.set(
        xscale="log",
        xlabel="context (tokens)",
        ylabel="GFLOPs per decoded token",
        title="Decode compute",
    )
    for ax in (ax_kv, ax_flops):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_training(points: list[dict[str, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot([p["step"] for p in points], [p["loss"] for p in points], label="training loss")
    evals = [p for p in points if "eval_loss" in p]
    if evals:
        ax.plot(
            [p["step"] for p in evals], [p["eval_loss"] for p in evals], "o-", label="eval loss"
        )
    ax.set(xlabel="optimizer step", ylabel="loss", title="Distillation training")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _plot_before_after(ppl: dict[str, float], bench: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [p for p in ("ppl", "kv", "speed") if p != "ppl" or ppl]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3.6))
    axes = [axes] if len(panels) == 1 else list(axes)
    for ax, panel in zip(axes, panels):
        if panel == "ppl":
            names = list(ppl)
            ax.bar(names, [ppl[n] for n in names], color="tab:blue")
            ax.set(ylabel="perplexity", title="Perplexity (lower is better)", yscale="log")
            for i, n in enumerate(names):
                ax.annotate(f"{ppl[n]:,.1f}", (i, ppl[n]), ha="center", va="bottom")
        else:
            rows = [r for r in bench if r["context"] == max(b["context"] for b in bench)]
            names = [r["model"] for r in rows]
            key = "kv_cache_bytes" if panel == "kv" else "decode_tokens_per_second"
            values = [r[key] / (2**20 if panel == "kv" else 1) for r in rows]
            ax.bar(names, values, color="tab:orange" if panel == "kv" else "tab:green")
            context = rows[0]["context"] if rows else 0
            ax.set(
                ylabel="MiB (measured)" if panel == "kv" else "tokens/s (median)",
                title=f"KV cache at {context:,} tokens"
                if panel == "kv"
                else f"Decode speed at {context:,} tokens",
            )
            for i, v in enumerate(values):
                ax.annotate(f"{v:,.1f}", (i, v), ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report(
    out: Path,
    options: RetrofitOptions,
    results: dict[str, dict[str, Any]],
    *,
    final_model: Path,
) -> list[str]:
    """Write ``OUT/report.md`` and the plots; copy them next to the final model.

    Returns:
        The written files, relative to ``out``.
    """
    import shutil

    from .._fs import portable_text

    plots = out / PLOTS
    plots.mkdir(parents=True, exist_ok=True)
    source_curve = cost_curves(options.src)
    target_curve = cost_curves(final_model)
    _plot_costs(source_curve, target_curve, plots / "cost_curves.png")
    files = [REPORT, f"{PLOTS}/cost_curves.png"]
    ppl = perplexities(results)
    bench = results.get("bench", {}).get("results", [])
    _plot_before_after(ppl, bench, plots / "before_after.png")
    files.append(f"{PLOTS}/before_after.png")
    if _plot_retrieval(results, plots / RETRIEVAL_PLOT):
        files.append(f"{PLOTS}/{RETRIEVAL_PLOT}")
    curve = training_curve(final_model / "metrics.jsonl")
    if curve:
        _plot_training(curve, plots / "training_curve.png")
        files.append(f"{PLOTS}/training_curve.png")
    errors = _layer_errors(final_model)
    if errors:
        plot_layer_errors(errors, plots / LAYER_PLOT)
        files.append(f"{PLOTS}/{LAYER_PLOT}")
    text = render_report(
        options, results, source_curve, target_curve, ppl, bench, curve, out, layer_errors=errors
    )
    (out / REPORT).write_text(portable_text(text, out), encoding="utf-8")
    # the copy next to the model, linked from the card (published: paths relative to it)
    (final_model / CARD_REPORT).write_text(portable_text(text, final_model), encoding="utf-8")
    (final_model / PLOTS).mkdir(exist_ok=True)
    for name in files[1:]:
        shutil.copy2(out / name, final_model / name)
    return files


def _layer_errors(final_model: Path) -> dict[int, float]:
    """The per-layer reconstruction errors in the final model's conversion manifest."""
    path = final_model / "gqa_retrofit.json"
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return manifest_errors(manifest) if isinstance(manifest, dict) else {}


def render_report(
    options: RetrofitOptions,
    results: dict[str, dict[str, Any]],
    source_curve: dict[str, Any],
    target_curve: dict[str, Any],
    ppl: dict[str, float],
    bench: list[dict[str, Any]],
    curve: list[dict[str, float]],
    out: Path,
    *,
    layer_errors: dict[int, float] | None = None,
) -> str:
    """The Markdown text of the report (``layer_errors``: the conversion's per-layer
    reconstruction error, plotted in ``report/layer_errors.png``)."""
    o = options
    lines = [
        f"# Retrofit report: {o.src}",
        "",
        f"Converted to **{o.kv_heads} KV heads**"
        + (f" and **{o.heads} query heads**" if o.heads else "")
        + f" with method `{_method(results) or o.method or 'default'}`"
        + (
            f", then trained on {', '.join(Path(p).name for p in o.train_data)}"
            f" ({_train_budget(o)}, teacher: {'source' if o.teacher == 'auto' else 'none'})"
            if o.trains
            else ", no training"
        )
        + ".",
        "",
    ]
    lost = retrieval_lost(results)
    if lost:
        lines += [f"**Warning: {lost}.**", ""]
    lines += [
        "## Before and after",
        "",
        "| | source | retrofit |",
        "|---|---:|---:|",
        f"| parameters | {source_curve['params']:,} | {target_curve['params']:,} |",
        f"| KV cache per token (bf16) | {source_curve['kv_cache_bytes_per_token']:,} B | "
        f"{target_curve['kv_cache_bytes_per_token']:,} B |",
    ]
    for i, context in enumerate(source_curve["contexts"]):
        if context in (8192, 131072):
            lines.append(
                f"| KV cache at {context // 1024}K (bf16) | "
                f"{_fmt_bytes(source_curve['kv_cache_bytes'][i])} | "
                f"{_fmt_bytes(target_curve['kv_cache_bytes'][i])} |"
            )
    if ppl:
        retro = ppl.get("trained", ppl.get("converted"))
        if retro is not None:
            lines.append(
                f"| perplexity ({Path(o.eval_data or '').name}, "
                f"{o.eval_windows}x{o.eval_seq_len}) | "
                f"{ppl.get('source', float('nan')):,.2f} | {retro:,.2f} |"
            )
        if "converted" in ppl and "trained" in ppl:
            lines.append(f"| perplexity right after conversion | | {ppl['converted']:,.2f} |")
    by_context: dict[int, dict[str, dict[str, Any]]] = {}
    for row in bench:
        by_context.setdefault(row["context"], {})[row["model"]] = row
    for context, rows in sorted(by_context.items()):
        src, ret = rows.get("source"), rows.get("retrofit")
        if src and ret:
            lines += [
                f"| decode tokens/s at {context:,} (median of {src['repeats']}, {src['dtype']}) | "
                f"{src['decode_tokens_per_second']:.2f} | {ret['decode_tokens_per_second']:.2f} "
                f"({ret['decode_tokens_per_second'] / src['decode_tokens_per_second']:.2f}x) |",
                f"| measured KV cache at {context + src['new_tokens']:,} tokens ({src['dtype']}) | "
                f"{src['kv_cache_bytes']:,} B | {ret['kv_cache_bytes']:,} B |",
            ]
    lines += [
        "",
        "![before/after](report/before_after.png)",
        "",
        "## Cost vs context",
        "",
        "From the estimator (`gqa-retrofit estimate`), batch 1, bf16 cache:",
        "",
        "![cost curves](report/cost_curves.png)",
        "",
    ]
    lines += retrieval_lines(results)
    lines += report_lines(layer_errors or {}, f"report/{LAYER_PLOT}")
    if curve:
        lines += [
            "## Training",
            "",
            f"{len(curve)} logged steps; loss {curve[0]['loss']:.3f} → {curve[-1]['loss']:.3f}.",
            "",
            "![training curve](report/training_curve.png)",
            "",
        ]
    state_file = out / "pipeline_state.json"
    if state_file.is_file():
        state = json.loads(state_file.read_text(encoding="utf-8"))
        lines += ["## Stages", "", "| stage | status | seconds |", "|---|---|---:|"]
        for name in state.get("order", []):
            record = state["stages"].get(name, {})
            if record.get("status") not in ("done", "skipped"):
                continue  # this stage and the later ones
            seconds = record.get("seconds")
            lines.append(
                f"| {name} | {record.get('status', 'pending')} | "
                f"{'' if seconds is None else f'{seconds:,.1f}'} |"
            )
        lines.append("")
    lines += ["## Reproduce", "", "```", reproduce_command(o), "```", ""]
    return "\n".join(lines)


def _method(results: dict[str, dict[str, Any]]) -> str | None:
    report = results.get("convert", {}).get("report", {})
    method = report.get("method") if isinstance(report, dict) else None
    return str(method) if method else None


def _train_budget(o: RetrofitOptions) -> str:
    if o.train_tokens:
        return f"{o.train_tokens:,} tokens"
    if o.train_steps:
        return f"{o.train_steps} steps"
    return "one pass"


def reproduce_command(o: RetrofitOptions) -> str:
    """The ``gqa-retrofit retrofit`` command line of these options (from the options regime).

    Extra training options (the config file's ``train:`` mapping) have no flag: they are
    named after the command.
    """
    import shlex

    command = shlex.join(["gqa-retrofit", "retrofit", *o.to_argv()])
    if o.train:
        command += "  # with --config: train: " + ", ".join(f"{k}={v}" for k, v in o.train.items())
    return command
