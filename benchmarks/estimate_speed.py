"""Estimator speed: in-process configs/s and CLI start-to-finish wall time.

Run: PYTHONPATH=src python benchmarks/estimate_speed.py
Writes benchmarks/results/estimate_speed.json (raw numbers; docs quote only this file).
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "cost" / "fixtures"
RESULTS = ROOT / "benchmarks" / "results" / "estimate_speed.json"
N_CONFIGS = 100
CLI_RUNS = 3


# the older fixtures with one attention geometry (what-ifs apply to them)
WHAT_IF_OK = {
    "falcon-7b",
    "gemma-2-9b",
    "gemma-3-1b-pt",
    "gemma-3-4b-it",
    "gpt2",
    "llama-2-7b",
    "llama-3.2-1b",
    "meta-llama-3-8b",
    "mistral-7b-v0.1",
    "mixtral-8x7b-v0.1",
    "opt-125m",
    "phi-3-mini-4k-instruct",
    "pythia-160m",
    "qwen2.5-7b",
    "qwen3-30b-a3b",
    "qwen3-8b",
    "smollm2-135m",
}


def in_process() -> dict:
    """Estimate 100 config files (the fixtures, cycled) end to end: read JSON, normalize, cost
    three contexts and one what-if. Import time is excluded (measured separately below)."""
    from gqa_retrofit.cost import estimate

    files = sorted(FIXTURES.glob("*.json"))
    paths = [files[i % len(files)] for i in range(N_CONFIGS)]
    estimate(paths[0])  # warm up imports
    per_config = []
    start = time.perf_counter()
    for path in paths:
        t = time.perf_counter()
        report = estimate(path, what_if=[(8, 1)] if path.stem in WHAT_IF_OK else [])
        report.to_dict()
        per_config.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    return {
        "configs": N_CONFIGS,
        "distinct_configs": len(files),
        "seconds_total": total,
        "configs_per_second": N_CONFIGS / total,
        "max_seconds_per_config": max(per_config),
        "median_seconds_per_config": statistics.median(per_config),
        "torch_imported": "torch" in sys.modules,
        "transformers_imported": "transformers" in sys.modules,
    }


def _cli(args: list[str], env: dict, check: bool = True) -> float:
    code = "import sys; from gqa_retrofit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], env=env, check=check, capture_output=True)
    return time.perf_counter() - t


def cli_wall_time() -> dict:
    """Wall time of `gqa-retrofit estimate CONFIG --json` in a fresh interpreter, for every
    fixture (median of CLI_RUNS each), and of refusing an unknown model type."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    per_config = {}
    for path in sorted(FIXTURES.glob("*.json")):
        runs = [_cli(["estimate", str(path), "--json"], env) for _ in range(CLI_RUNS)]
        per_config[path.stem] = statistics.median(runs)
    unknown = ROOT / "benchmarks" / "results" / ".unknown-type-config.json"
    unknown.write_text(json.dumps({"model_type": "no_such_type", "hidden_size": 8}))
    try:
        refusals = [_cli(["estimate", str(unknown)], env, check=False) for _ in range(CLI_RUNS)]
    finally:
        unknown.unlink()
    bare = []
    for _ in range(CLI_RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
    return {
        "runs_per_config": CLI_RUNS,
        "configs": len(per_config),
        "median_seconds_per_config": per_config,
        "max_median_seconds": max(per_config.values()),
        "slowest_config": max(per_config, key=per_config.__getitem__),
        "unknown_type_refusal_median_seconds": statistics.median(refusals),
        "python_startup_median_seconds": statistics.median(bare),
    }


def main() -> None:
    result = {
        "benchmark": "estimate_speed",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "loadavg_before": os.getloadavg(),
        "in_process": in_process(),
        "cli": cli_wall_time(),
    }
    result["loadavg_after"] = os.getloadavg()
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
