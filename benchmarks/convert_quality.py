"""Conversion quality on the embedded model: every method, KV 3 -> 1 and query heads 9 -> 6 / 3.

Run: PYTHONPATH=src python benchmarks/convert_quality.py [--tokens 16384] [--rows NAME,...]
Writes benchmarks/results/convert_quality.json after every row (raw numbers; docs quote only
this file). Calibration: the first ``--tokens`` tokens of the training novels (Emma first);
evaluation: zero-shot perplexity on the first 16 windows of 512 tokens of *Persuasion* (test
novel) and of the Debian handbook (out of domain); greedy continuations of two fixed prompts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "convert_quality.json"
PROMPTS = [
    "It was a truth universally acknowledged that",
    "To install a package on Debian, run",
]
NEW_TOKENS = 24

# name -> (kv_heads, heads or None, method, query-head selection)
ROWS: dict[str, tuple[int, int | None, str, str]] = {
    "original": (3, None, "mean", "-"),
    "kv1/mean": (1, None, "mean", "-"),
    "kv1/pca-refit": (1, None, "pca-refit", "-"),
    "kv1/pca": (1, None, "pca", "-"),
    "kv1/align-mean": (1, None, "align-mean", "-"),
    "kv1/mean-refit": (1, None, "mean-refit", "-"),
    "h6kv3/drop-index": (3, 6, "mean", "index"),
    "h6kv3/pca-refit": (3, 6, "pca-refit", "importance"),
    "h3kv1/drop-index": (1, 3, "mean", "index"),
    "h3kv1/pca-refit": (1, 3, "pca-refit", "importance"),
    "h6kv3/pca-refit-index": (3, 6, "pca-refit", "index"),
    "h3kv1/pca-refit-index": (1, 3, "pca-refit", "index"),
}


def _method(kv: str, refit: bool, heads_by: str):
    """A pooling function with fixed pipeline choices (for the index-selection baselines)."""
    from gqa_retrofit.conversion.methods import convert_attention

    def fn(weights, target, calibration=None):
        return convert_attention(
            weights, target, calibration, kv=kv, refit=refit, heads_by=heads_by
        )

    return fn


def _register_baselines() -> None:
    from gqa_retrofit.conversion.pooling import pooling_methods, register_pooling

    if "bench-drop-index" not in pooling_methods():
        register_pooling("bench-drop-index", pools="mean", needs_calibration=False)(
            _method("mean", False, "index")
        )
        register_pooling("bench-pca-refit-index", pools="pca", refit=True, needs_calibration=True)(
            _method("pca", True, "index")
        )


def _generate(model: Any, tokenizer: Any) -> list[str]:
    from gqa_retrofit.evaluation.generation import greedy_continuations

    found = greedy_continuations(model, tokenizer, PROMPTS, new_tokens=NEW_TOKENS)
    return [sample.text for sample in found.samples]


def run_row(name: str, tokens: int, eval_windows: int) -> dict[str, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gqa_retrofit.assets import default_corpus, default_model_dir
    from gqa_retrofit.conversion.in_memory import convert_in_memory
    from gqa_retrofit.conversion.pooling import HeadTarget
    from gqa_retrofit.evaluation.perplexity import evaluate_perplexity

    src = default_model_dir()
    corpus = default_corpus()
    tokenizer = AutoTokenizer.from_pretrained(src)
    kv, heads, method, heads_by = ROWS[name]
    if heads_by == "index":
        method = "bench-drop-index" if method == "mean" else "bench-pca-refit-index"
    row: dict[str, Any] = {
        "row": name,
        "kv_heads": kv,
        "heads": heads or 9,
        "method": ROWS[name][2],
        "query_head_selection": heads_by,
    }
    if name == "original":
        model = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
        row["convert_seconds"] = 0.0
    else:
        result = convert_in_memory(
            src, HeadTarget(kv, heads), method, corpus.train, tokens=tokens, tokenizer=tokenizer
        )
        model = result.model
        row["convert_seconds"] = round(result.seconds, 2)
        row["calibration_tokens"] = tokens if result.calibration_fingerprint else 0
        row["record_layer0"] = result.records[0]
    for key, path in (("persuasion", corpus.test), ("ood", corpus.ood)):
        res = evaluate_perplexity(
            model, path, tokenizer=tokenizer, seq_len=512, max_windows=eval_windows
        )
        row[f"perplexity_{key}"] = res.perplexity
    row["greedy"] = dict(zip(PROMPTS, _generate(model, tokenizer)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=16384, help="calibration tokens")
    parser.add_argument("--eval-windows", type=int, default=16)
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (merged into)")
    args = parser.parse_args()
    out: Path = args.out
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    _register_baselines()
    results: dict[str, Any] = {"rows": []}
    if out.is_file():
        results = json.loads(out.read_text())
    results.update(
        {
            "model": "SmolLM2-135M-Instruct (9 query / 3 KV heads, 30 layers)",
            "calibration": f"first {args.tokens} tokens of the training novels (Emma first)",
            "evaluation": f"first {args.eval_windows} windows x 512 tokens; Persuasion and "
            "the Debian handbook (out of domain)",
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "note": "times are wall clock; each row records the 1-minute load average "
                "(about 1-2 on a quiet 2-core machine running only this script)",
            },
        }
    )
    done = {r["row"]: i for i, r in enumerate(results["rows"])}
    for name in args.rows.split(","):
        start = time.perf_counter()
        row = run_row(name, args.tokens, args.eval_windows)
        row["load_average_1min"] = os.getloadavg()[0]
        row["row_seconds"] = round(time.perf_counter() - start, 1)
        if name in done:
            results["rows"][done[name]] = row
        else:
            done[name] = len(results["rows"])
            results["rows"].append(row)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps({k: row[k] for k in row if k not in ("greedy", "record_layer0")}))


if __name__ == "__main__":
    main()
