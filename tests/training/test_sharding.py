"""The teacher under FSDP2: a real 2-process run on CPU (gloo) of the sharding training uses.

accelerate 1.15 cannot run the whole training loop with FSDP on a CPU-only machine: its
``AcceleratorState`` switches to FSDP only for GPU-like distributed types (MULTI_GPU, NPU, XPU,
...); a CPU launch becomes MULTI_CPU (``cpu=True``) or a single process, and trains with plain
gloo data parallelism. torch's ``fully_shard`` itself runs on CPU, so the teacher's sharding is
checked directly here: each process holds half of the teacher and its logits equal the unsharded
model's.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_teacher_is_sharded_over_two_processes_and_computes_the_same() -> None:
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(HERE.parents[1] / "src"), str(HERE.parent)]),
        OMP_NUM_THREADS="1",
    )
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(_free_port()),
        str(HERE / "shard_teacher.py"),
    ]
    result = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert sorted(r["rank"] for r in rows) == [0, 1]
    for row in rows:
        assert row["param_type"] == "DTensor"
        assert row["max_abs_diff"] < 1e-5  # same computation, gathered layer by layer
        # every parameter is split in two along its first dimension (all are even here)
        assert row["local_params"] * 2 == row["total_params"]
