"""patch_model on the embedded SmolLM2-135M (9 q / 3 kv heads): perplexity and measured KV cache.

Run: PYTHONPATH=src python benchmarks/patching_smollm2.py
Writes benchmarks/results/patching_smollm2.json. Perplexity: first 16 windows of 512 tokens of
Persuasion (the reference setting of notes/assets.md). KV cache: bytes held by a DynamicCache
after a 512-token forward, divided by 512 tokens (fp32 weights, so 4 bytes per element).
"""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

import gqa_retrofit
from gqa_retrofit.assets import default_corpus, default_model_dir
from gqa_retrofit.conversion.live import patch_model
from gqa_retrofit.evaluation.perplexity import evaluate_perplexity

OUT = Path(__file__).parent / "results" / "patching_smollm2.json"
WINDOWS, SEQ_LEN = 16, 512


def kv_cache_bytes_per_token(model, seq: int = SEQ_LEN) -> int:
    cache = DynamicCache(config=model.config)
    ids = torch.randint(100, 1000, (1, seq))
    with torch.no_grad():
        model(input_ids=ids, cache=cache, use_cache=True)
    total = sum(
        layer.keys.numel() * layer.keys.element_size()
        + layer.values.numel() * layer.values.element_size()
        for layer in cache.layers
    )
    return total // seq


def measure(model, tokenizer, text: Path, label: str, report=None) -> dict:
    start = time.perf_counter()
    result = evaluate_perplexity(
        model, text, tokenizer=tokenizer, max_windows=WINDOWS, seq_len=SEQ_LEN
    )
    attn = model.model.layers[0].self_attn
    row = {
        "label": label,
        "kv_heads": model.config.num_key_value_heads,
        "heads": model.config.num_attention_heads,
        "head_dim": model.config.head_dim,
        "k_proj_shape": list(attn.k_proj.weight.shape),
        "perplexity": result.perplexity,
        "loss": result.loss,
        "tokens": result.tokens,
        "eval_seconds": round(time.perf_counter() - start, 2),
        "kv_cache_bytes_per_token": kv_cache_bytes_per_token(model),
    }
    if report is not None:
        row["patch_report"] = report.to_dict()
        row["patch_report"]["records"] = row["patch_report"]["records"][:1]
    print(json.dumps({k: v for k, v in row.items() if k != "patch_report"}))
    return row


def main() -> None:
    torch.manual_seed(0)
    model_dir = default_model_dir()
    text = default_corpus().test
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    rows = [measure(model, tokenizer, text, "original (9 q / 3 kv)")]
    start = time.perf_counter()
    report = patch_model(model, kv_heads=9)
    patch_seconds = round(time.perf_counter() - start, 3)
    rows.append(measure(model, tokenizer, text, "expanded to MHA (9 kv, repeat)", report))
    rows[-1]["patch_seconds"] = patch_seconds
    report = patch_model(model, kv_heads=3)
    rows.append(measure(model, tokenizer, text, "pooled back to 3 kv (mean)", report))
    report = patch_model(model, kv_heads=1)
    rows.append(measure(model, tokenizer, text, "mean-pooled to 1 kv (MQA, no training)", report))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(
        json.dumps(
            {
                "benchmark": "patching_smollm2",
                "model": "SmolLM2-135M-Instruct (embedded default)",
                "data": f"{text.name}, first {WINDOWS} windows of {SEQ_LEN} tokens",
                "versions": {
                    "gqa_retrofit": gqa_retrofit.__version__,
                    "torch": torch.__version__,
                    "transformers": transformers.__version__,
                },
                "machine": {"platform": platform.platform(), "threads": torch.get_num_threads()},
                "results": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
