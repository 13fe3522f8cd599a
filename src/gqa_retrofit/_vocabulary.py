"""The options several commands share, declared once: ``same_as(SharedOptions, name)``.

``eval``, ``train``, ``convert`` and ``retrofit`` reuse these declarations (help text, bounds,
parsers), so ``--eval-windows`` or ``--device`` reads the same in every command. Each command
adds its own old names (aliases) where it had them.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._options import Options, device_value, option
from .data.options import DataOptions


@dataclass
class SharedOptions(Options):
    """Declarations only: no command takes this class itself."""

    eval_data: str | None = option(None, "held-out text to evaluate on", metavar="TEXT")
    eval_windows: int = option(
        16,
        "evaluate the first N windows of --eval-seq-len tokens",
        minimum=1,
        metavar="N",
    )
    eval_seq_len: int = option(512, "tokens per evaluation window", minimum=2, metavar="N")
    data_options: DataOptions = option(
        help="how the text is read (column, Hub dataset config/split/revision, seed)",
        default_factory=DataOptions,
        nested=True,
    )
    device: str = option(
        "auto",
        "where the model runs: auto (the accelerator when present), cpu, cuda, cuda:N, mps",
        parse=device_value,
        metavar="DEVICE",
    )
    revision: str | None = option(
        None,
        "Hub revision (branch, tag or commit) of the model when it is a Hub id (default: main)",
        metavar="REV",
    )
    trust_remote_code: bool = option(
        False,
        "allow custom modeling code from the checkpoint (the tool's own *_gqa types load "
        "without it)",
    )
