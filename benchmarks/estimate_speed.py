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
CLI_RUNS = 7


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
        report = estimate(path, what_if=[(8, 1)] if "deepseek" not in path.name else [])
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


def cli_wall_time() -> dict:
    """Wall time of `gqa-retrofit estimate CONFIG --json` in a fresh interpreter."""
    config = str(FIXTURES / "meta-llama-3-8b.json")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    code = "import sys; from gqa_retrofit.cli.main import main; sys.exit(main(sys.argv[1:]))"
    times = []
    for _ in range(CLI_RUNS):
        t = time.perf_counter()
        subprocess.run(
            [sys.executable, "-c", code, "estimate", config, "--json"],
            env=env,
            check=True,
            capture_output=True,
        )
        times.append(time.perf_counter() - t)
    bare = []
    for _ in range(CLI_RUNS):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        bare.append(time.perf_counter() - t)
    return {
        "runs": CLI_RUNS,
        "median_seconds": statistics.median(times),
        "max_seconds": max(times),
        "python_startup_median_seconds": statistics.median(bare),
    }


def main() -> None:
    result = {
        "benchmark": "estimate_speed",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "in_process": in_process(),
        "cli": cli_wall_time(),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
