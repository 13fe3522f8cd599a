"""Scale benchmark of the streaming converter: a multi-GB sharded Llama-shaped checkpoint.

Generates a synthetic checkpoint (random bf16 weights, several shards, written shard by shard so
the generator never holds the model), then measures in fresh subprocesses, alternating:

- ``copy``: a plain read-and-write copy of the same tensors (``safetensors.torch.load_file`` then
  ``save_file`` for each shard), the floor any converter must pay;
- ``convert``: ``convert_checkpoint(src, out, kv_heads=..., method="mean")``.

Each arm reports wall time and peak RSS (``VmHWM`` of its own process) above the interpreter
baseline (``VmRSS`` after imports, before any work). Results go to
``benchmarks/results/convert_scale.json``.

Run: ``PYTHONPATH=src python benchmarks/convert_scale.py`` (about 5 minutes, ~13 GB of /tmp).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results" / "convert_scale.json"

# Llama-shaped (TinyLlama-like widths, more layers): 2.1 B parameters, 4.2 GB in bf16.
CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_size": 2048,
    "intermediate_size": 5632,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 64,
    "num_hidden_layers": 44,
    "vocab_size": 32000,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": False,
    "dtype": "bfloat16",
    "bos_token_id": 1,
    "eos_token_id": 2,
}
TARGET_KV_HEADS = 2
SHARD_BYTES = 1_000_000_000  # ~1 GB source and output shards


def _shapes(config: dict | None = None) -> list[tuple[str, tuple[int, ...]]]:
    config = CONFIG if config is None else config
    d, f, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    h, kv, dh = config["num_attention_heads"], config["num_key_value_heads"], config["head_dim"]
    shapes: list[tuple[str, tuple[int, ...]]] = [("model.embed_tokens.weight", (v, d))]
    for i in range(config["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes += [
            (p + "input_layernorm.weight", (d,)),
            (p + "self_attn.q_proj.weight", (h * dh, d)),
            (p + "self_attn.k_proj.weight", (kv * dh, d)),
            (p + "self_attn.v_proj.weight", (kv * dh, d)),
            (p + "self_attn.o_proj.weight", (d, h * dh)),
            (p + "post_attention_layernorm.weight", (d,)),
            (p + "mlp.gate_proj.weight", (f, d)),
            (p + "mlp.up_proj.weight", (f, d)),
            (p + "mlp.down_proj.weight", (d, f)),
        ]
    shapes.append(("model.norm.weight", (d,)))
    if not config.get("tie_word_embeddings", False):
        shapes.append(("lm_head.weight", (v, d)))
    return shapes


def generate(src: Path, config: dict | None = None) -> dict[str, int]:
    """Write the synthetic checkpoint shard by shard (one shard in memory at a time)."""
    import torch
    from safetensors.torch import save_file

    config = CONFIG if config is None else config
    src.mkdir(parents=True)
    (src / "config.json").write_text(json.dumps(config, indent=2))
    gen = torch.Generator().manual_seed(0)
    groups: list[list[tuple[str, tuple[int, ...]]]] = [[]]
    size = 0
    for name, shape in _shapes(config):
        nbytes = 2 * int(torch.Size(shape).numel())
        if groups[-1] and size + nbytes > SHARD_BYTES:
            groups.append([])
            size = 0
        groups[-1].append((name, shape))
        size += nbytes
    weight_map, total = {}, 0
    for idx, group in enumerate(groups, 1):
        file = f"model-{idx:05d}-of-{len(groups):05d}.safetensors"
        shard = {}
        for name, shape in group:
            t = torch.empty(shape, dtype=torch.float32)
            t.normal_(0.0, 0.02, generator=gen) if len(shape) > 1 else t.fill_(1.0)
            shard[name] = t.to(torch.bfloat16)
            weight_map[name] = file
            total += shard[name].numel() * 2
        save_file(shard, src / file, metadata={"format": "pt"})
        del shard
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (src / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    return {"bytes": total, "shards": len(groups), "tensors": len(weight_map)}


def _status_bytes(field: str) -> int:
    """``VmRSS`` (current) or ``VmHWM`` (peak) of this process from /proc, in bytes.

    ``getrusage``'s ``ru_maxrss`` would survive ``exec`` and report the parent's peak; ``VmHWM``
    belongs to this process image only.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"{field} not in /proc/self/status")


def arm(kind: str, src: Path, out: Path) -> dict[str, float | int]:
    """One measured run, in this (fresh) process."""
    # Library imports belong to the interpreter baseline of both arms, not to the work:
    # transformers' config classes alone pull in torch.distributed (~3 s on a busy machine).
    import torch  # noqa: F401
    from safetensors.torch import load_file, save_file
    from transformers import AutoConfig, LlamaConfig  # noqa: F401

    import gqa_retrofit.patching  # noqa: F401
    from gqa_retrofit.conversion.convert import convert_checkpoint

    baseline = _status_bytes("VmRSS")
    start = time.perf_counter()
    if kind == "copy":
        out.mkdir(parents=True)
        for file in sorted(src.glob("*.safetensors")):
            save_file(load_file(file), out / file.name, metadata={"format": "pt"})
        shutil.copyfile(src / "model.safetensors.index.json", out / "model.safetensors.index.json")
        timings = {}
    else:
        report = convert_checkpoint(
            src, out, kv_heads=TARGET_KV_HEADS, method="mean", max_shard_size=SHARD_BYTES
        )
        timings = report.manifest["timings"]
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    return {
        "seconds": seconds,
        "baseline_rss_bytes": baseline,
        "peak_rss_bytes": peak,
        "peak_rss_above_baseline_bytes": peak - baseline,
        "converter_timings": timings,
    }


def _run_arm(kind: str, src: Path, out: Path) -> dict[str, float | int]:
    if out.exists():
        shutil.rmtree(out)
    os.sync()  # start every arm with no dirty pages left by the previous one (not timed)
    env = dict(os.environ, GQA_RETROFIT_QUIET="1")
    proc = subprocess.run(
        [sys.executable, __file__, "--arm", kind, "--src", str(src), "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    written = sum(p.stat().st_size for p in out.glob("*.safetensors"))
    shutil.rmtree(out)
    return {"arm": kind, **result, "bytes_written": written}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", default="/tmp/gqa-convert-scale")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse (and keep) a checkpoint generated by an earlier run",
    )
    parser.add_argument("--arm", choices=["copy", "convert"], help=argparse.SUPPRESS)
    parser.add_argument("--src", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.arm:
        print(json.dumps(arm(args.arm, Path(args.src), Path(args.out))))
        return

    work = Path(args.workdir)
    src = work / "src"
    started = time.perf_counter()
    stamp = src / "generated.json"
    if args.reuse and stamp.is_file() and json.loads(stamp.read_text())["config"] == CONFIG:
        checkpoint = json.loads(stamp.read_text())["checkpoint"]
    else:
        if work.exists():
            shutil.rmtree(work)
        checkpoint = generate(src)
        stamp.write_text(json.dumps({"config": CONFIG, "checkpoint": checkpoint}))
    generate_seconds = time.perf_counter() - started
    runs = []
    for _ in range(args.repeats):
        for kind in ("copy", "convert"):
            runs.append(_run_arm(kind, src, work / kind))
            print(json.dumps(runs[-1]), flush=True)
    if not args.reuse:
        shutil.rmtree(work)

    # The disk is shared (other jobs write too), so single runs are noisy: arms alternate and
    # the ratio is taken between medians.
    median = {
        k: statistics.median(r["seconds"] for r in runs if r["arm"] == k)
        for k in ("copy", "convert")
    }
    worst_rss = max(r["peak_rss_above_baseline_bytes"] for r in runs if r["arm"] == "convert")
    ratio = median["convert"] / median["copy"]
    summary = {
        "source_bytes": checkpoint["bytes"],
        "copy_seconds_median": round(median["copy"], 2),
        "convert_seconds_median": round(median["convert"], 2),
        "convert_over_copy_median": round(ratio, 3),
        "copy_MB_per_s": round(checkpoint["bytes"] / 1e6 / median["copy"], 1),
        "convert_MB_per_s": round(checkpoint["bytes"] / 1e6 / median["convert"], 1),
        "convert_peak_rss_above_baseline_MiB": round(worst_rss / 2**20, 1),
        "copy_peak_rss_above_baseline_MiB": round(
            max(r["peak_rss_above_baseline_bytes"] for r in runs if r["arm"] == "copy") / 2**20, 1
        ),
    }
    targets = {"convert_over_copy_max": 1.5, "peak_rss_above_baseline_MiB_max": 1536}
    result = {
        "benchmark": "convert_scale",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "checkpoint": {
            **checkpoint,
            "config": CONFIG,
            "dtype": "bfloat16",
            "shard_bytes": SHARD_BYTES,
            "generate_seconds": round(generate_seconds, 1),
        },
        "conversion": {
            "kv_heads": f"{CONFIG['num_key_value_heads']} -> {TARGET_KV_HEADS}",
            "method": "mean",
        },
        "runs": runs,
        "summary": summary,
        "targets": targets,
        "meets_targets": ratio <= targets["convert_over_copy_max"]
        and worst_rss / 2**20 <= targets["peak_rss_above_baseline_MiB_max"],
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
