"""Training memory plans: Llama-3.1 8B/70B on 8 x 80 GiB, and the plan against a measured run.

1. ``train --dry-run``'s plan (``gqa_retrofit.training.memory_plan.plan_training``) for
   Llama-3.1-8B and -70B (``benchmarks/configs``), attention trainable, distillation from the
   unconverted model, 8,192-token sequences, batch 1, on 8 devices of 80 GiB: the plan as asked
   and the options that make it fit.
2. The plan for a real run on this CPU: SmolLM2-135M (the embedded model) trained with itself as
   teacher for 3 steps (batch 2 x 256 tokens), in a fresh subprocess whose peak RSS above its
   post-import baseline (``VmHWM - VmRSS``) is set next to the plan's total.

Run: ``PYTHONPATH=src python benchmarks/train_memory_plan.py`` (writes
``benchmarks/results/train_memory_plan.json``; ~2 minutes on a quiet 2-core machine).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results" / "train_memory_plan.json"
MEASURED = {"seq_len": 256, "batch_size": 2, "max_steps": 3, "trainable": "attention"}


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def big_plans() -> dict:
    from gqa_retrofit.training import TrainOptions
    from gqa_retrofit.training.memory_plan import plan_training

    out = {}
    for name in ("llama-3.1-8b", "llama-3.1-70b"):
        config = str(HERE / "configs" / name)
        options = TrainOptions(
            model=config,
            teacher=config,
            seq_len=8192,
            batch_size=1,
            dry_run=True,
            plan_devices=8,
            device_memory="80GiB",
        ).validate()
        plan = plan_training(options)
        out[name] = {**plan.to_dict(), "text": plan.render()}
    return out


def measure(out_dir: str) -> dict:
    """The measured arm (a fresh process): train SmolLM2 for a few steps."""
    import torch  # noqa: F401
    import transformers  # noqa: F401

    from gqa_retrofit.assets import default_corpus, default_model_dir
    from gqa_retrofit.training import TrainOptions, train
    from gqa_retrofit.training.memory_plan import plan_training

    model = str(default_model_dir())
    options = TrainOptions(
        model=model,
        out=out_dir,
        teacher=model,
        data=[str(default_corpus().train[0])],
        device="cpu",
        **MEASURED,
    )
    planned = plan_training(
        TrainOptions(**{**options.to_dict(), "dry_run": True, "plan_devices": 1})
    )
    baseline = _status_bytes("VmRSS")
    start = time.perf_counter()
    train(options)
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM") - baseline
    return {
        "options": {**MEASURED, "teacher": "the same model", "dtype": "fp32", "device": "cpu"},
        "plan_parts": planned.plan.parts,
        "plan_total_bytes": planned.plan.total_bytes,
        "baseline_rss_bytes": baseline,
        "peak_rss_above_baseline_bytes": peak,
        "plan_over_measured": round(planned.plan.total_bytes / peak, 3),
        "seconds": round(seconds, 1),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        print(json.dumps(measure(sys.argv[2])))
        return
    load_start = os.getloadavg()
    plans = big_plans()
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ, GQA_RETROFIT_QUIET="1")
        proc = subprocess.run(
            [sys.executable, __file__, "--measure", str(Path(tmp) / "out")],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
    measured = json.loads(proc.stdout.strip().splitlines()[-1])
    result = {
        "benchmark": "train_memory_plan",
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg(),
        },
        "plans_8_x_80GiB": plans,
        "smollm2_cpu": measured,
        "target": "plan within 15% of the measured peak RSS above baseline",
        "meets_target": abs(measured["plan_over_measured"] - 1) <= 0.15,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(plans["llama-3.1-8b"]["text"], plans["llama-3.1-70b"]["text"], sep="\n")
    print(json.dumps(measured, indent=2))


if __name__ == "__main__":
    main()
