"""Which layers' conversion breaks copying? Convert all layers once, then graft one at a time.

Run: PYTHONPATH=src python benchmarks/retrieval_research/layer_sensitivity.py [--tokens 4096]
Converts the embedded model 3 -> 1 KV heads with ``pca-refit`` (in memory, calibrated on the
training novels), records the whole converted model's copy probe and Persuasion perplexity
(results/full_conversion.jsonl), then puts each converted layer alone into the original model and
measures the copy probe (results/layer_sensitivity.json: second-copy loss by layer, 2 spans).
"""

from __future__ import annotations

import argparse
import json
import time

from harness import (
    RESULTS,
    append_jsonl,
    copy_probe,
    load_model,
    persuasion_perplexity,
    source_and_tokenizer,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tokens", type=int, default=4096)
    args = parser.parse_args()
    from gqa_retrofit.assets import default_corpus
    from gqa_retrofit.conversion.in_memory import convert_in_memory
    from gqa_retrofit.conversion.pooling import HeadTarget

    src, tok = source_and_tokenizer()
    start = time.perf_counter()
    converted = convert_in_memory(
        src, HeadTarget(1), "pca-refit", default_corpus().train, tokens=args.tokens, tokenizer=tok
    ).model
    seconds = time.perf_counter() - start
    append_jsonl(
        "full_conversion.jsonl",
        {
            "method": "pca-refit",
            "tokens": args.tokens,
            "convert_s": seconds,
            "copy": copy_probe(converted, tok.vocab_size),
            "ppl8": persuasion_perplexity(converted, tok),
        },
    )
    new = [layer.self_attn for layer in converted.model.layers]
    model = load_model(src)
    old = [layer.self_attn for layer in model.model.layers]
    by_layer = {}
    for i in range(len(old)):
        for j, layer in enumerate(model.model.layers):
            layer.self_attn = new[j] if j == i else old[j]
        by_layer[i] = copy_probe(model, tok.vocab_size, n=2)["second"]
        print(i, round(by_layer[i], 3), flush=True)
    (RESULTS / "layer_sensitivity.json").write_text(json.dumps(by_layer))


if __name__ == "__main__":
    main()
