"""Render the example model card of docs/publish.md from a real retrofit of the embedded model.

Command (from the repository root, ~2-3 minutes on 2 CPU cores):

    PYTHONPATH=src python benchmarks/publish_card_example.py [--method METHOD] [--kv-heads 1]

Converts SmolLM2-135M-Instruct (9 query / 3 KV heads) to 1 KV head, measures perplexity of the
source and the converted model on Persuasion (first 16 windows of 512 tokens), records the
evaluations in the manifest, renders the card with ``write_card`` and writes:

- ``benchmarks/results/publish_card_example.json``: the raw numbers and settings;
- ``model_cards/examples/SmolLM2-135M-Instruct-gqa1.README.md``: the card, as generated, and its
  ``gqa_retrofit_cost.png``.

The converted checkpoint itself stays in the gqa-retrofit cache (it is not committed).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import shutil
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "publish_card_example.json"
CARD_COPY = ROOT / "model_cards" / "examples" / "SmolLM2-135M-Instruct-gqa1.README.md"
BASE_MODEL = "HuggingFaceTB/SmolLM2-135M-Instruct"
REPO_ID = "your-name/SmolLM2-135M-Instruct-gqa1"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default=None, help="conversion method (default: converter's)")
    parser.add_argument("--kv-heads", type=int, default=1)
    parser.add_argument("--windows", type=int, default=16)
    args = parser.parse_args()

    import torch

    from gqa_retrofit.assets import default_corpus, default_model_dir
    from gqa_retrofit.evaluation.perplexity import evaluate_perplexity
    from gqa_retrofit.hub.card import write_card

    # (imported by name: the converter is a sibling workstream's module)
    convert_checkpoint = importlib.import_module(
        "gqa_retrofit.conversion.convert"
    ).convert_checkpoint
    torch.set_num_threads(2)
    source = default_model_dir()
    corpus = default_corpus(ood=False)
    out = source.parent.parent / "examples" / f"SmolLM2-135M-Instruct-gqa{args.kv_heads}"
    calibration = corpus.train if args.method not in (None, "mean", "keep") else None

    start = time.perf_counter()
    convert_checkpoint(
        source,
        out,
        kv_heads=args.kv_heads,
        method=args.method,
        calibration=calibration,
        overwrite=True,
    )
    convert_seconds = time.perf_counter() - start
    manifest_path = out / "gqa_retrofit.json"
    manifest = json.loads(manifest_path.read_text())

    evaluations = []
    for model, path in (("source", source), ("converted", out)):
        start = time.perf_counter()
        result = evaluate_perplexity(path, corpus.test, seq_len=512, max_windows=args.windows)
        evaluations.append(
            {
                "model": model,
                "dataset": "persuasion",
                "metric": "perplexity",
                "value": round(float(result.perplexity), 4),
                "tokens": int(result.tokens),
                "seq_len": 512,
                "windows": args.windows,
                "seconds": round(time.perf_counter() - start, 2),
            }
        )
    manifest["evaluations"] = evaluations
    manifest_path.write_text(json.dumps(manifest, indent=2) + "\n")

    (out / "README.md").unlink(missing_ok=True)
    card = write_card(out, repo_id=REPO_ID, base_model=BASE_MODEL, license="apache-2.0")
    CARD_COPY.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(card, CARD_COPY)
    shutil.copyfile(out / "gqa_retrofit_cost.png", CARD_COPY.parent / "gqa_retrofit_cost.png")
    RESULTS.write_text(
        json.dumps(
            {
                "benchmark": "publish_card_example",
                "command": "PYTHONPATH=src python benchmarks/publish_card_example.py"
                + (f" --method {args.method}" if args.method else "")
                + (f" --kv-heads {args.kv_heads}" if args.kv_heads != 1 else ""),
                "machine": {"cpus": torch.get_num_threads(), "platform": platform.platform()},
                "source": str(source.name),
                "base_model": BASE_MODEL,
                "method": manifest.get("method"),
                "heads": manifest.get("heads"),
                "convert_seconds": round(convert_seconds, 2),
                "evaluations": evaluations,
                "card": str(CARD_COPY.relative_to(ROOT)),
            },
            indent=2,
        )
        + "\n"
    )
    print(json.dumps(evaluations, indent=2))
    print(f"card: {CARD_COPY}")


if __name__ == "__main__":
    main()
