"""One converted layer at a time in the original model, with and without attention transfer.

Run: PYTHONPATH=src:benchmarks/retrieval_research python \
        benchmarks/retrieval_research/single_layer.py NAME --layers 18,19 --steps 200 [...]

The session advances every layer with its ORIGINAL weights, so each tested layer is calibrated
on the original model's activations (no drift from earlier conversions), as in
``layer_sensitivity.py``. For each tested layer: ``pca-refit`` (the product's default), then,
when ``--steps`` > 0, the attention-transfer refinement of ``transfer.py``; the converted layer
is put alone into the original model and the research copy probe (2 spans) is measured for both.
Appends one row to results/single_layer.jsonl.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from harness import append_jsonl, copy_probe
from transfer import add_common_arguments, refine, setup


def main() -> None:
    parser = argparse.ArgumentParser()
    add_common_arguments(parser, copy_windows=8, steps=200)
    parser.add_argument("--layers", required=True)
    args = parser.parse_args()

    from gqa_retrofit.conversion.calibration import _get, attention_weights, build_attention
    from gqa_retrofit.conversion.methods import compose
    from gqa_retrofit.conversion.pooling import HeadTarget

    run = setup(args)
    tok, model, spec, attn_name = run.tokenizer, run.model, run.spec, run.attn_name
    layers, session, start, config = run.layers, run.session, run.start, run.model.config
    tested = [int(x) for x in args.layers.split(",")]
    variants: dict[int, dict[str, Any]] = {}
    for i in range(max(tested) + 1):
        source = attention_weights(spec, config, _get(layers[i], attn_name))
        cal = session.layer(i, source)
        if i in tested:
            base = compose.convert_attention(source, HeadTarget(1), cal, kv="pca", refit=True)
            found = {"pca-refit": base.weights}
            if args.steps:
                found["transfer"] = refine(session, i, base.weights, cal, args)
            errors = {}
            for name, w in found.items():
                out, _ = cal.run_attention(w, cal.source_inputs)
                errors[name] = round(
                    float((out - cal.target).pow(2).mean() / cal.target.pow(2).mean()), 5
                )
            variants[i] = {"weights": found, "errors": errors}
        session.advance(i, source)
    result = {}
    base_copy = copy_probe(model, tok.vocab_size, n=2)["second"]
    for i in tested:
        original = _get(layers[i], attn_name)
        row = {"relative_error": variants[i]["errors"]}
        for name, w in variants[i]["weights"].items():
            setattr(layers[i], attn_name, build_attention(spec, original, config, w, layer_idx=i))
            row[name] = round(copy_probe(model, tok.vocab_size, n=2)["second"], 3)
        setattr(layers[i], attn_name, original)
        result[i] = row
        print(i, row, flush=True)
    row = {
        "name": args.name,
        "settings": vars(args),
        "original_copy_2_spans": round(base_copy, 3),
        "by_layer": result,
        "seconds": round(time.perf_counter() - start, 1),
        "load_average": os.getloadavg(),
    }
    print(row, flush=True)
    append_jsonl("single_layer.jsonl", row)


if __name__ == "__main__":
    main()
