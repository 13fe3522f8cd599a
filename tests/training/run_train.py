"""Run ``train(options)`` in a fresh process (used by tests that kill or launch processes).

    python run_train.py OPTIONS.json [KILL_AT_STEP]

With KILL_AT_STEP the process SIGKILLs itself right after that optimizer step: a hard kill
between checkpoints, with no chance to clean up.
"""

from __future__ import annotations

import json
import os
import signal
import sys

from gqa_retrofit.training import TrainOptions, train


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as f:
        options = TrainOptions.from_dict(json.load(f))
    kill_at = int(sys.argv[2]) if len(sys.argv) > 2 else None

    def on_step(step: int, metrics: dict) -> None:
        if step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)

    train(options, on_step=on_step)


if __name__ == "__main__":
    main()
