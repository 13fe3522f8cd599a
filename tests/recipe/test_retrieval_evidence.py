"""plan's in-context retrieval evidence: looked up by architecture, equal to the benchmark JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.recipe import retrieval_evidence as ev
from gqa_retrofit.recipe.retrieval_evidence import (
    MEASURED,
    SMOLLM2_135M,
    Measurement,
    retrieval_evidence,
)

ROOT = Path(__file__).resolve().parents[2]
SMOL = dict(model_type="llama", layers=30, hidden=576, heads=9, kv_heads=3)


def test_measured_rows_equal_the_committed_benchmark() -> None:
    from gqa_retrofit.evaluation.retrieval_verdict import judge_retrieval

    data = json.loads((ROOT / ev.EVIDENCE_FILE).read_text())
    rows = {r["row"]: r for r in data["rows"]}
    source = rows["original"]
    expected = set()
    for name, row in rows.items():
        if name == "original" or "kv_heads" not in row:
            continue
        verdict = judge_retrieval(source, row)
        assert verdict.kept is not None, name
        expected.add(
            (
                name,
                row["heads"],
                row["kv_heads"],
                row["method"],
                verdict.kept,
                tuple(verdict.reasons),
            )
        )
    got = {(m.row, m.heads, m.kv_heads, m.method, m.kept, m.reasons) for m in MEASURED}
    assert got == expected
    assert all(m.model == SMOLLM2_135M for m in MEASURED)


def test_lookup(monkeypatch: pytest.MonkeyPatch) -> None:
    lost = Measurement(SMOLLM2_135M, 9, 1, "mean", False, False, ("copy 4.8x",), "kv1/mean")
    kept = Measurement(SMOLLM2_135M, 6, 3, "new", True, True, (), "h6kv3/new")
    monkeypatch.setattr(ev, "MEASURED", (lost, kept))
    assert retrieval_evidence(**SMOL, target_heads=9, target_kv_heads=3).status == "kept"
    found = retrieval_evidence(**SMOL, target_heads=9, target_kv_heads=1)
    assert (found.status, found.note) == (
        "lost",
        "lost with mean (measured on SmolLM2-135M-Instruct: copy 4.8x; "
        "benchmarks/results/retrieval_probes.json)",
    )
    found = retrieval_evidence(**SMOL, target_heads=6, target_kv_heads=3)
    assert found.status == "kept" and found.note.startswith("kept with new + training")
    found = retrieval_evidence(**SMOL, target_heads=3, target_kv_heads=1)
    assert (found.status, found.note) == (
        "not measured",
        "not measured for this configuration; measured on SmolLM2-135M-Instruct, lost by 9:1 mean",
    )
    other = dict(SMOL, hidden=1024)
    assert retrieval_evidence(**other, target_heads=9, target_kv_heads=1).status == "not measured"


def test_plan_carries_the_evidence(monkeypatch: pytest.MonkeyPatch) -> None:
    from gqa_retrofit.recipe.plan import plan_retrofit

    lost = Measurement(SMOLLM2_135M, 9, 1, "mean", False, False, ("copy 4.8x",), "kv1/mean")
    monkeypatch.setattr(ev, "MEASURED", (lost,))
    config = ROOT / "tests" / "recipe" / "fixtures" / "smollm2-135m" / "config.json"
    plan = plan_retrofit(config, context=8192)
    by_label = {o.config.label: o for o in plan.options}
    assert by_label["9:1"].to_dict()["retrieval"]["status"] == "lost"
    assert by_label["9:3"].to_dict()["retrieval"] == {"status": "kept", "note": "unchanged"}
    assert plan.chosen is not None and plan.chosen.config.label == "9:1"
    lines = plan.retrieval_lines()
    assert lines[-1] in plan.to_markdown()
    assert lines[0].startswith("retrieval 9:1: lost with mean")
    assert lines[-1].startswith("warning: 9:1 lost in-context retrieval where measured")
