"""The stage runner: order, recorded state, resume after a failure, plan, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gqa_retrofit.errors import OutputExistsError
from gqa_retrofit.pipeline.stages import (
    METRICS_FILE,
    STATE_FILE,
    Stage,
    StageContext,
    StageEstimate,
    StageRunner,
    format_plan,
)


class Recorder:
    """Stages that log their calls; ``fail_in`` makes one stage raise once."""

    def __init__(self, fail_in: str | None = None) -> None:
        self.calls: list[str] = []
        self.fail_in = fail_in

    def stages(self) -> list[Stage]:
        def first(ctx: StageContext) -> dict[str, Any]:
            self.calls.append("first")
            (ctx.stage_dir / "weights.txt").write_text("w", encoding="utf-8")
            return {"value": 2}

        def second(ctx: StageContext) -> dict[str, Any]:
            self.calls.append("second")
            assert (ctx.final_path("first") / "weights.txt").read_text(encoding="utf-8") == "w"
            (ctx.stage_dir / "half.txt").write_text("x", encoding="utf-8")
            if self.fail_in == "second":
                self.fail_in = None
                raise RuntimeError("simulated crash")
            return {"value": ctx.result("first")["value"] * 10}

        def third(ctx: StageContext) -> dict[str, Any]:
            self.calls.append("third")
            return {"sum": ctx.result("first")["value"] + ctx.result("second")["value"]}

        return [
            Stage(
                "first",
                "make a file",
                first,
                makes_dir=True,
                estimate=lambda: StageEstimate(12.0, 3 * 1024**2),
            ),
            Stage(
                "second",
                "use it",
                second,
                makes_dir=True,
                estimate=lambda: StageEstimate(125.0, 2 * 1024**3, note="guess"),
            ),
            Stage("optional", "not today", lambda ctx: {"never": True}, skip="no data given"),
            Stage("third", "sum", third),
        ]


def test_runs_in_order_and_records_results(tmp_path: Path) -> None:
    rec = Recorder()
    out = tmp_path / "out"
    results = StageRunner(out, rec.stages(), options={"a": 1}).run()
    assert rec.calls == ["first", "second", "third"]
    assert results["third"] == {"sum": 22}
    assert results["optional"] == {}
    state = json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
    assert state["order"] == ["first", "second", "optional", "third"]
    assert [state["stages"][n]["status"] for n in state["order"]] == [
        "done",
        "done",
        "skipped",
        "done",
    ]
    assert state["stages"]["second"]["result"] == {"value": 20}
    assert (out / "first" / "weights.txt").is_file()
    assert not (out / "first.partial").exists()
    events = [json.loads(line) for line in (out / METRICS_FILE).read_text().splitlines()]
    assert [(e["stage"], e["event"]) for e in events] == [
        ("first", "start"),
        ("first", "done"),
        ("second", "start"),
        ("second", "done"),
        ("optional", "skipped"),
        ("third", "start"),
        ("third", "done"),
    ]


def test_resume_after_failure_continues_at_first_unfinished_stage(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rec = Recorder(fail_in="second")
    with pytest.raises(RuntimeError, match="simulated crash"):
        StageRunner(out, rec.stages(), options={"a": 1}).run()
    assert rec.calls == ["first", "second"]
    state = json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
    assert state["stages"]["first"]["status"] == "done"
    assert state["stages"]["second"]["status"] == "failed"
    assert "simulated crash" in state["stages"]["second"]["error"]
    assert not (out / "second").exists() and not (out / "second.partial").exists()
    first_mtime = (out / "first" / "weights.txt").stat().st_mtime_ns

    plan = StageRunner(out, rec.stages(), options={"a": 1}).plan()
    assert [row["status"] for row in plan] == ["done", "pending", "skipped", "pending"]

    results = StageRunner(out, rec.stages(), options={"a": 1}).run()
    assert rec.calls == ["first", "second", "second", "third"]  # first not rerun
    assert results["third"] == {"sum": 22}
    assert (out / "first" / "weights.txt").stat().st_mtime_ns == first_mtime
    # A third run has nothing left to do.
    StageRunner(out, rec.stages(), options={"a": 1}).run()
    assert rec.calls == ["first", "second", "second", "third"]


def test_keep_partial_hands_the_partial_directory_back(tmp_path: Path) -> None:
    seen: list[bool] = []

    def resumable(ctx: StageContext) -> dict[str, Any]:
        marker = ctx.stage_dir / "checkpoint"
        seen.append(marker.exists())
        if not marker.exists():
            marker.write_text("step 3", encoding="utf-8")
            raise KeyboardInterrupt
        return {"resumed": True}

    stages = [Stage("train", "train", resumable, makes_dir=True, keep_partial=True)]
    with pytest.raises(KeyboardInterrupt):
        StageRunner(tmp_path / "o", stages, options={}).run()
    assert StageRunner(tmp_path / "o", stages, options={}).run()["train"] == {"resumed": True}
    assert seen == [False, True]
    assert (tmp_path / "o" / "train" / "checkpoint").is_file()


def test_refuses_other_options_and_foreign_directories(tmp_path: Path) -> None:
    out = tmp_path / "out"
    StageRunner(out, Recorder().stages(), options={"kv_heads": 1, "steps": 5}).run()
    with pytest.raises(OutputExistsError, match=r"different options \(steps\)"):
        StageRunner(out, Recorder().stages(), options={"kv_heads": 1, "steps": 6}).run()
    rec = Recorder()
    StageRunner(out, rec.stages(), options={"kv_heads": 1, "steps": 6}, overwrite=True).run()
    assert rec.calls == ["first", "second", "third"]

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(OutputExistsError, match="is not a pipeline output"):
        StageRunner(foreign, Recorder().stages(), options={}).run()
    assert (foreign / "keep.txt").read_text(encoding="utf-8") == "mine"


def test_plan_lists_estimates_and_writes_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    rows = StageRunner(out, Recorder().stages(), options={}).plan()
    assert not out.exists()
    assert rows[0] == {
        "stage": "first",
        "description": "make a file",
        "status": "pending",
        "estimated_seconds": 12.0,
        "estimated_memory_bytes": 3 * 1024**2,
    }
    assert rows[1]["estimate_note"] == "guess"
    assert rows[2] == {
        "stage": "optional",
        "description": "not today",
        "status": "skipped",
        "reason": "no data given",
    }
    text = format_plan(rows)
    assert " 1  first            pending        12 s      3.0 MiB  make a file" in text
    assert " 2  second           pending     2.1 min      2.0 GiB  use it [guess]" in text
    assert "not today (no data given)" in text
    assert text.endswith("total pending: about 2.3 min, peak memory about 2.0 GiB")
