"""Run ``gqa-retrofit ARGS...`` with the output's final move paused (for kill/race tests).

Usage: ``python _paused_convert.py READY GO -- convert SRC OUT ...``. When the temporary output
is complete the script creates the file READY and waits until the file GO exists, then lets the
final move run and exits with the CLI's exit code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from gqa_retrofit import _fs
from gqa_retrofit.cli.main import main

ready, go = Path(sys.argv[1]), Path(sys.argv[2])
real_finish = _fs._finish


def paused_finish(tmp: Path, out: Path, *, overwrite: bool) -> None:
    ready.write_text(tmp.name)
    while not go.exists():
        time.sleep(0.02)
    real_finish(tmp, out, overwrite=overwrite)


_fs._finish = paused_finish
sys.exit(main(sys.argv[4:]))
