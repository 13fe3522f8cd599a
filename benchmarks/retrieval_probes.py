"""In-context retrieval of the embedded model before and after conversion (issue 14's baseline).

Run: PYTHONPATH=src python benchmarks/retrieval_probes.py [--rows NAME,...] [--steps STEP,...]
     [--checkpoint NAME=DIR ...]
Writes benchmarks/results/retrieval_probes.json after every (step, row) and
benchmarks/results/retrieval_probes.png at the end. Every number comes from the package API
(:mod:`gqa_retrofit.evaluation.retrieval`), fp32, batch 1, seed 0:

- ``copy``: 4 spans of 256 random tokens repeated twice, mean loss on each copy;
- ``passkey:N``: passkey retrieval on the filler haystack at N tokens, depths 0, .25, .5, .75, 1,
  one prompt per depth (5 prompts per length; prompts depend only on seed, length, depth and
  trial, so lengths run in separate steps add up to one ladder);
- ``long-ppl``: loss by position over the first ``--long-windows`` windows of 8,192 tokens of
  *Persuasion* (BOS first).

Steps run cheapest first, each over all rows, so a run stopped early (the machine is shared and
8K prompts take minutes on CPU) still leaves complete rows for the steps it reached; a rerun skips
the (step, row) pairs already in the JSON. Conversions (like benchmarks/convert_quality.py:
calibration on the first 16,384 tokens of the training novels) are done once and saved under
``--work``; ``--checkpoint NAME=DIR`` adds a row for a saved checkpoint (a trained retrofit, say).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path
from typing import Any

import torch

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "retrieval_probes.json"
DEPTHS = (0.0, 0.25, 0.5, 0.75, 1.0)
CALIBRATION_TOKENS = 16384

# name -> (kv_heads, heads or None, method); "original" is the unconverted model
ROWS: dict[str, tuple[int, int | None, str]] = {
    "original": (3, None, "-"),
    "kv1/mean": (1, None, "mean"),
    "kv1/pca-refit": (1, None, "pca-refit"),
    "h6kv3/pca-refit": (3, 6, "pca-refit"),
}


STEPS = ("copy", "passkey:1024", "passkey:2048", "long-ppl", "passkey:4096", "passkey:8192")


def model_dir(name: str, checkpoints: dict[str, Path], work: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint directory of one row (converted once into ``work``) and its description."""
    from gqa_retrofit.assets import default_corpus, default_model_dir
    from gqa_retrofit.conversion.in_memory import convert_in_memory
    from gqa_retrofit.conversion.pooling import HeadTarget

    src = default_model_dir()
    if name in checkpoints:
        return checkpoints[name], {"checkpoint": str(checkpoints[name])}
    kv, heads, method = ROWS[name]
    row: dict[str, Any] = {"kv_heads": kv, "heads": heads or 9, "method": method}
    if name == "original":
        return src, row
    out = work / name.replace("/", "_")
    record = out / "bench_row.json"
    if not record.is_file():
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(src)
        result = convert_in_memory(
            src,
            HeadTarget(kv, heads),
            method,
            default_corpus().train,
            tokens=CALIBRATION_TOKENS,
            tokenizer=tokenizer,
        )
        result.model.save_pretrained(out)
        tokenizer.save_pretrained(out)
        row["convert_seconds"] = round(result.seconds, 1)
        row["calibration_tokens"] = CALIBRATION_TOKENS if result.calibration_fingerprint else 0
        record.write_text(json.dumps(row))
        del result
    return out, json.loads(record.read_text())


def run_step(step: str, model: Any, tokenizer: Any, long_windows: int) -> dict[str, Any]:
    """One probe of one row as a partial :class:`RetrievalResult` dict."""
    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.evaluation.retrieval import RetrievalOptions, evaluate_retrieval

    probe, _, length = step.partition(":")
    options = RetrievalOptions(
        probes=(probe,),
        passkey_lengths=(int(length),) if length else None,
        passkey_depths=DEPTHS,
        passkey_trials=1,
        copy_span=256,
        copy_trials=4,
        long_data=str(default_corpus().test),
        long_windows=long_windows,
    )
    return evaluate_retrieval(model, tokenizer, options).to_dict()


def merge(row: dict[str, Any], step: str, found: dict[str, Any]) -> None:
    """Fold one step's result into the row (passkey lengths add up to one ladder)."""
    if step.startswith("passkey"):
        new = found["passkey"]
        old = row.get("passkey")
        if old is None:
            row["passkey"] = new
        else:
            lengths = {r["length"]: r for r in old["lengths"] + new["lengths"]}
            old["lengths"] = [lengths[n] for n in sorted(lengths)]
            kept = [s for s in old["samples"] if s["length"] != new["lengths"][0]["length"]]
            old["samples"] = sorted(kept + new["samples"], key=lambda s: s["length"])
    elif step == "copy":
        row["copy"] = found["copy"]
    else:
        row["long_window"] = found["long_window"]
        row["long_window"]["data"] = Path(row["long_window"]["data"]).name
    row.setdefault("seconds", {})[step] = sum(found["seconds"].values())
    row["load_average_1min"] = {**row.get("load_average_1min", {}), step: os.getloadavg()[0]}
    row["completed"] = [*row.get("completed", []), step]


def main() -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from gqa_retrofit.evaluation.retrieval import RetrievalResult, plot_retrieval

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", default=",".join(ROWS), help="comma-separated row names")
    parser.add_argument("--steps", default=",".join(STEPS), help="comma-separated steps, in order")
    parser.add_argument("--long-windows", type=int, default=1, help="8K windows of Persuasion")
    parser.add_argument(
        "--checkpoint", action="append", default=[], help="NAME=DIR: a saved model as a row"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("/tmp/gqa-retrieval-bench"))
    parser.add_argument("--out", type=Path, default=RESULTS, help="results JSON (merged into)")
    args = parser.parse_args()
    checkpoints = {k: Path(v) for k, v in (c.split("=", 1) for c in args.checkpoint)}
    names = [n for n in args.rows.split(",") if n]
    names += [n for n in checkpoints if n not in names]
    torch.set_num_threads(args.threads)
    out: Path = args.out
    results: dict[str, Any] = {"rows": []}
    if out.is_file():
        results = json.loads(out.read_text())
    results.update(
        {
            "model": "SmolLM2-135M-Instruct (9 query / 3 KV heads, 30 layers, 8,192 positions)",
            "protocol": {
                "passkey": "filler haystack, depths 0/.25/.5/.75/1, 1 prompt per depth, seed 0",
                "copy": "4 spans x 256 random tokens, repeated twice, seed 0",
                "long-ppl": f"first {args.long_windows} window(s) x 8192 tokens of persuasion.txt",
                "dtype": "float32",
            },
            "calibration": f"first {CALIBRATION_TOKENS} tokens of the training novels",
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "torch_threads": torch.get_num_threads(),
                "note": "seconds are wall clock on a shared machine; load averages per step",
            },
        }
    )
    rows = {r["row"]: r for r in results["rows"]}
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    dirs = {}
    for name in names:
        dirs[name], described = model_dir(name, checkpoints, work)
        rows[name] = {**rows.get(name, {}), "row": name, **described}
    for step in args.steps.split(","):
        for name in names:
            row = rows[name]
            if step in row.get("completed", []):
                continue
            model = AutoModelForCausalLM.from_pretrained(dirs[name], dtype=torch.float32).eval()
            tokenizer = AutoTokenizer.from_pretrained(dirs[name])
            merge(row, step, run_step(step, model, tokenizer, args.long_windows))
            del model
            row["summary"] = RetrievalResult.from_dict(row).summary()
            results["rows"] = list(rows.values())
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(results, indent=2) + "\n")
            print(json.dumps({"row": name, "step": step, **row["summary"]}), flush=True)
    plot_retrieval(
        {name: RetrievalResult.from_dict(rows[name]) for name in names}, out.with_suffix(".png")
    )


if __name__ == "__main__":
    main()
