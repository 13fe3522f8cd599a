"""A resumable runner of ordered, named stages that write their results into one directory.

Layout of an output directory ``OUT``::

    OUT/pipeline_state.json   options, stage order and per-stage status/result/timings
    OUT/metrics.jsonl         one JSON line per stage event (start, done, failed)

Both hold no absolute local path: paths in the options and the stage results are recorded
relative to ``OUT`` (``../data/train.txt``), so the folder can move or be shared and a rerun of
the same command still finds its options equal.
    OUT/<dir>/                what a stage with ``makes_dir`` writes (renamed into place);
                              ``<dir>`` is the stage's ``dir_name`` or its name

A stage runs in ``OUT/<dir>.partial/`` and that directory is renamed to ``OUT/<dir>/``
only after the stage returned; then its result is recorded as done. A rerun of the same options
skips every done stage and continues at the first unfinished one; a stage interrupted half way
finds its ``.partial`` directory again (training uses that to resume from its checkpoints).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._fs import portable_paths, portable_text, write_json_atomic
from ..errors import OutputExistsError

STATE_FILE = "pipeline_state.json"
METRICS_FILE = "metrics.jsonl"
STATE_VERSION = 1


@dataclass(frozen=True)
class StageEstimate:
    """Rough cost of a stage for ``--dry-run``: wall seconds and peak memory bytes."""

    seconds: float
    memory_bytes: int
    note: str = ""


@dataclass
class StageContext:
    """What a running stage sees: the output root, its own directory, earlier results."""

    out: Path
    stage_dir: Path
    results: dict[str, dict[str, Any]]

    def result(self, stage: str) -> dict[str, Any]:
        """The recorded result of an earlier (done) stage, ``{}`` when it was skipped."""
        return self.results.get(stage, {})

    dir_names: dict[str, str] | None = None

    def final_path(self, stage: str) -> Path:
        """Where the directory of ``stage`` lives once that stage is done."""
        return self.out / (self.dir_names or {}).get(stage, stage)


@dataclass
class Stage:
    """One named step: ``run(ctx) -> result`` (JSON-able dict) plus a dry-run estimate.

    ``skip`` (a reason) marks a stage that the options turn off; it is listed in the plan and
    recorded as skipped. ``makes_dir`` gives the stage ``OUT/<name>/`` as its output.
    """

    name: str
    description: str
    run: Callable[[StageContext], dict[str, Any]]
    estimate: Callable[[], StageEstimate] | None = None
    makes_dir: bool = False
    skip: str | None = None
    keep_partial: bool = False  # keep ``<name>.partial`` after a failure (resumable stages)
    dir_name: str | None = None  # name of the output directory (default: the stage name)

    @property
    def output_dir_name(self) -> str:
        return self.dir_name or self.name


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class StageRunner:
    """Runs stages in order inside ``out``, recording state so that a rerun resumes.

    Args:
        out: the output directory (created if missing).
        stages: the stages, in order; names must be unique.
        options: the JSON-able options of the run; a rerun into the same ``out`` must pass
            equal options (else it would silently mix two different runs). Absolute paths in
            them are recorded and compared relative to ``out``.
        overwrite: start from scratch even if ``out`` holds another run or other files.

    Raises:
        OutputExistsError: ``out`` holds other files, or a run with different options, and
            ``overwrite`` is false.
    """

    def __init__(
        self,
        out: str | os.PathLike[str],
        stages: Sequence[Stage],
        *,
        options: dict[str, Any],
        overwrite: bool = False,
    ) -> None:
        names = [stage.name for stage in stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        self.out = Path(out)
        self.stages = list(stages)
        self.options = portable_paths(json.loads(json.dumps(options, default=str)), self.out)
        self.overwrite = overwrite

    # -- state -------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.out / STATE_FILE

    def load_state(self) -> dict[str, Any] | None:
        """The recorded state of a previous run into ``out`` (None when there is none)."""
        if not self.state_path.is_file():
            return None
        state: dict[str, Any] = json.loads(self.state_path.read_text(encoding="utf-8"))
        # a state written before paths were recorded relative to OUT compares the same way
        state["options"] = portable_paths(state.get("options", {}), self.out)
        return state

    def _check_out(self) -> dict[str, Any] | None:
        """Validate ``out`` for this run; returns the state to resume from, if any."""
        state = self.load_state()
        if self.overwrite:
            return None
        if state is not None:
            done = [n for n, r in state.get("stages", {}).items() if r.get("status") == "done"]
            if state.get("options") != self.options and not done:
                return None  # nothing was kept from that attempt: start over with these options
            if state.get("options") != self.options:
                changed = sorted(
                    key
                    for key in set(state.get("options", {})) | set(self.options)
                    if state.get("options", {}).get(key) != self.options.get(key)
                )
                raise OutputExistsError(
                    f"{str(self.out)!r} holds a run with different options ({', '.join(changed)}): "
                    "rerun with the same options to resume, pass --overwrite to start over, "
                    "or choose another output directory"
                )
            return state
        if self.out.exists() and any(self.out.iterdir()):
            raise OutputExistsError(
                f"output {str(self.out)!r} exists and is not a pipeline output: pass --overwrite "
                "to replace it or choose another directory"
            )
        return None

    def _write_state(self, state: dict[str, Any]) -> None:
        write_json_atomic(self.state_path, state)

    def _log(self, **event: Any) -> None:
        record = portable_paths(json.loads(json.dumps(event, default=str)), self.out)
        with open(self.out / METRICS_FILE, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"time": _now(), **record}) + "\n")

    # -- plan --------------------------------------------------------------------------
    def plan(self) -> list[dict[str, Any]]:
        """One row per stage: name, description, status (done/pending/skipped), estimates.

        Reads the recorded state (if ``out`` holds this run) without changing anything.
        """
        state = None if self.overwrite else self.load_state()
        if state is not None and state.get("options") != self.options:
            state = None
        recorded = (state or {}).get("stages", {})
        rows = []
        for stage in self.stages:
            status = recorded.get(stage.name, {}).get("status")
            if stage.skip is not None:
                status = "skipped"
            elif status != "done":
                status = "pending"
            row: dict[str, Any] = {
                "stage": stage.name,
                "description": stage.description,
                "status": status,
            }
            if stage.skip is not None:
                row["reason"] = stage.skip
            if status == "pending" and stage.estimate is not None:
                estimate = stage.estimate()
                row["estimated_seconds"] = round(estimate.seconds, 1)
                row["estimated_memory_bytes"] = int(estimate.memory_bytes)
                if estimate.note:
                    row["estimate_note"] = estimate.note
            rows.append(row)
        return rows

    # -- run ---------------------------------------------------------------------------
    def run(self) -> dict[str, dict[str, Any]]:
        """Run every stage that is not done yet, in order.

        Returns:
            The results of all stages (done earlier or now), by name.

        Raises:
            OutputExistsError: see the class.
            Exception: whatever a stage raises; the state keeps all stages done before it.
        """
        state = self._check_out()
        if state is None:
            if self.out.exists():
                shutil.rmtree(self.out)  # empty, a run without done stages, or --overwrite
            self.out.mkdir(parents=True)
            state = {
                "version": STATE_VERSION,
                "created": _now(),
                "options": self.options,
                "order": [stage.name for stage in self.stages],
                "stages": {},
            }
            self._write_state(state)
        results: dict[str, dict[str, Any]] = {
            name: record.get("result", {})
            for name, record in state["stages"].items()
            if record.get("status") in ("done", "skipped")
        }
        for stage in self.stages:
            record = state["stages"].get(stage.name, {})
            if stage.skip is not None:
                if record.get("status") != "skipped":
                    state["stages"][stage.name] = {"status": "skipped", "reason": stage.skip}
                    self._write_state(state)
                    self._log(stage=stage.name, event="skipped", reason=stage.skip)
                results[stage.name] = {}
                continue
            if record.get("status") == "done":
                continue
            results[stage.name] = self._run_stage(stage, state, results)
        state["finished"] = _now()
        self._write_state(state)
        return results

    def _run_stage(
        self, stage: Stage, state: dict[str, Any], results: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        final_dir = self.out / stage.output_dir_name
        partial = self.out / f"{stage.output_dir_name}.partial"
        if stage.makes_dir:
            if final_dir.exists():  # left by a crash between rename and state write
                shutil.rmtree(final_dir)
            if partial.exists() and not stage.keep_partial:
                shutil.rmtree(partial)
            partial.mkdir(parents=True, exist_ok=True)
        started = _now()
        state["stages"][stage.name] = {"status": "running", "started": started}
        self._write_state(state)
        self._log(stage=stage.name, event="start")
        start = time.perf_counter()
        ctx = StageContext(
            self.out,
            partial if stage.makes_dir else self.out,
            results,
            {s.name: s.output_dir_name for s in self.stages},
        )
        try:
            result = stage.run(ctx)
        except BaseException as err:
            seconds = time.perf_counter() - start
            state["stages"][stage.name] = {
                "status": "failed",
                "started": started,
                "error": portable_text(f"{type(err).__name__}: {err}", self.out),
            }
            self._write_state(state)
            self._log(stage=stage.name, event="failed", seconds=seconds, error=type(err).__name__)
            if stage.makes_dir and not stage.keep_partial:
                shutil.rmtree(partial, ignore_errors=True)
            raise
        seconds = time.perf_counter() - start
        # recorded (and handed to later stages) with paths relative to OUT, as on a resume
        result = portable_paths(json.loads(json.dumps(result or {}, default=str)), self.out)
        if stage.makes_dir:
            partial.rename(final_dir)
        state["stages"][stage.name] = {
            "status": "done",
            "started": started,
            "finished": _now(),
            "seconds": round(seconds, 3),
            "result": result,
        }
        self._write_state(state)
        self._log(stage=stage.name, event="done", seconds=seconds, result=result)
        return result


def format_plan(rows: list[dict[str, Any]]) -> str:
    """The plan as a plain-text table (``--dry-run`` output)."""
    lines = [f"{'#':>2}  {'stage':<16} {'status':<8} {'est. time':>10} {'est. memory':>12}  what"]
    total_seconds = 0.0
    peak = 0
    for i, row in enumerate(rows, 1):
        seconds = row.get("estimated_seconds")
        memory = row.get("estimated_memory_bytes")
        if seconds is not None:
            total_seconds += seconds
        if memory is not None:
            peak = max(peak, memory)
        what = row["description"] + (f" ({row['reason']})" if "reason" in row else "")
        if "estimate_note" in row:
            what += f" [{row['estimate_note']}]"
        lines.append(
            f"{i:>2}  {row['stage']:<16} {row['status']:<8} "
            f"{_fmt_seconds(seconds):>10} {_fmt_bytes(memory):>12}  {what}"
        )
    lines.append(
        f"    total pending: about {_fmt_seconds(total_seconds)}, peak memory about "
        f"{_fmt_bytes(peak)}"
    )
    return "\n".join(lines)


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def _fmt_bytes(value: int | None) -> str:
    if value is None:
        return "-"
    size = float(value)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"
