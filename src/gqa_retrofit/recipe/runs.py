"""A user's own scaling runs: reading the CSV and fitting one law per head configuration.

The file has a header row with the columns ``heads``, ``kv_heads``, ``non_embedding_params``,
``loss`` and optionally ``context`` (the training context of the run). Lines starting with ``#``
are comments. Extra columns are ignored. Sizes may be written as ``1.2e9``.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from ..errors import DataError, GQARetrofitError
from .scaling import ScalingFit, fit_scaling_law
from .search import HeadConfig

REQUIRED_COLUMNS = ("heads", "kv_heads", "non_embedding_params", "loss")


@dataclass(frozen=True)
class Run:
    """One training run: head configuration, size, final loss and (optionally) context."""

    heads: int
    kv_heads: int
    non_embedding_params: float
    loss: float
    context: int | None = None

    @property
    def config(self) -> HeadConfig:
        return HeadConfig(self.heads, self.kv_heads)


def _number(text: str, column: str, line: int, path: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise DataError(
            f"{path}, line {line}: column {column!r} holds {text!r}, not a number"
        ) from None
    if not math.isfinite(value):
        raise DataError(f"{path}, line {line}: column {column!r} holds {text!r}: must be finite")
    return value


def _integer(text: str, column: str, line: int, path: str) -> int:
    value = _number(text, column, line, path)
    if value != int(value) or value <= 0:
        raise DataError(
            f"{path}, line {line}: column {column!r} holds {text!r}: must be a positive integer"
        )
    return int(value)


def read_runs(path: str | os.PathLike[str]) -> list[Run]:
    """Read a runs CSV.

    Raises:
        DataError: the file is missing or empty, a required column is missing, or a value is
            not a number / not a positive integer where one is needed, or kv_heads > heads.
    """
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"runs file {name!r} does not exist") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"runs file {name!r} cannot be read: {err}") from None
    numbered = [
        (i, line)
        for i, line in enumerate(text.splitlines(), start=1)
        if line.strip() and not line.lstrip().startswith("#")
    ]
    if not numbered:
        raise DataError(
            f"runs file {name!r} is empty: expected a header row "
            f"({', '.join(REQUIRED_COLUMNS)}[, context]) and runs"
        )
    reader = csv.DictReader(io.StringIO("\n".join(line for _, line in numbered)))
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise DataError(
            f"runs file {name!r} lacks column(s) {', '.join(missing)}: the header must hold "
            f"{', '.join(REQUIRED_COLUMNS)} (and optionally context)"
        )
    runs = []
    for (line, _), row in zip(numbered[1:], reader):
        cells = {k: (v or "").strip() for k, v in row.items() if k is not None}
        heads = _integer(cells["heads"], "heads", line, name)
        kv_heads = _integer(cells["kv_heads"], "kv_heads", line, name)
        if kv_heads > heads:
            raise DataError(
                f"{name}, line {line}: kv_heads {kv_heads} exceeds heads {heads}: need "
                "kv_heads <= heads"
            )
        size = _number(cells["non_embedding_params"], "non_embedding_params", line, name)
        if size <= 0:
            raise DataError(f"{name}, line {line}: non_embedding_params must be positive")
        loss = _number(cells["loss"], "loss", line, name)
        context = None
        if cells.get("context"):
            context = _integer(cells["context"], "context", line, name)
        runs.append(Run(heads, kv_heads, size, loss, context))
    if not runs:
        raise DataError(f"runs file {name!r} holds a header but no runs")
    return runs


def select_context(runs: list[Run], context: int | None) -> list[Run]:
    """The runs trained at ``context`` (all runs when the file records one context or none).

    Raises:
        DataError: the runs mix several training contexts and ``context`` is not given, or no
            run was trained at ``context``.
    """
    contexts = sorted({r.context for r in runs if r.context is not None})
    if context is None:
        if len(contexts) > 1:
            raise DataError(
                f"the runs mix training contexts {contexts}: choose one with --fit-context "
                "(the paper fits at 8K)"
            )
        return runs
    chosen = [r for r in runs if r.context == context]
    if not chosen:
        raise DataError(
            f"no run was trained at context {context}: the runs hold "
            f"{contexts or 'no context column'}"
        )
    return chosen


def fit_runs(
    runs: list[Run], *, skip_unfittable: bool = False
) -> tuple[dict[HeadConfig, ScalingFit], dict[str, str]]:
    """Fit ``loss(N) = (a/N)^b + E`` per head configuration.

    Args:
        runs: the runs (one training context).
        skip_unfittable: report configurations whose fit is refused instead of raising.

    Returns:
        The fits by head configuration and, for each refused configuration, the reason.

    Raises:
        DataError: a configuration cannot be fitted (unless ``skip_unfittable``), or none can.
    """
    groups: dict[HeadConfig, list[Run]] = defaultdict(list)
    for run in runs:
        groups[run.config].append(run)
    fits: dict[HeadConfig, ScalingFit] = {}
    refused: dict[str, str] = {}
    for config in sorted(groups):
        group = groups[config]
        label = f"head configuration {config.label}"
        try:
            fits[config] = fit_scaling_law(
                [r.non_embedding_params for r in group], [r.loss for r in group], label=label
            )
        except GQARetrofitError as err:
            if not skip_unfittable:
                raise
            refused[config.label] = str(err)
    if not fits:
        raise DataError(
            "no head configuration could be fitted: "
            + "; ".join(f"{k}: {v}" for k, v in refused.items())
        )
    return fits, refused
