"""``gqa-retrofit recommend``: JSON contract, table, plot, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.cli.main import main
from gqa_retrofit.recipe.recommend import recommend

EXAMPLE = Path(__file__).parents[2] / "examples" / "runs_synthetic.csv"
ARGS = ["recommend", "--runs", str(EXAMPLE), "--context", "128k", "--target-loss", "2.6"]


def test_json_contract_matches_the_python_api(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--baseline", "32:8", "--lambda", "0.9", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    recs = data["recommendations"]
    expected = recommend(EXAMPLE, context=131072, target_loss=2.6, baseline="32:8")
    assert len(recs) == len(expected.recommendations) == 21
    for item, rec in zip(recs, expected.recommendations):
        for key in ("heads", "kv_heads", "params", "layers", "hidden", "memory", "flops", "z"):
            assert item[key] == getattr(rec, key)
        assert item["change_percent"] == rec.change_percent
    assert [r["z"] for r in recs] == sorted(r["z"] for r in recs)
    assert data["context"] == 131072 and data["baseline"] == "32:8"
    assert data["objective"] == {"lambda": 0.9, "alpha": 0.5, "beta": pytest.approx(1 / 3)}


def test_table_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    plot = tmp_path / "recipe.png"
    assert main([*ARGS, "--baseline", "32:8", "--top", "3", "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    best = recommend(EXAMPLE, context=131072, target_loss=2.6).best
    assert (
        f"best: heads {best.heads}, kv_heads {best.kv_heads}, N* {best.params:.4g} "
        f"(L {best.layers}, d {best.hidden}, head_dim 64)"
    ) in out
    assert "dM, dC, dZ: % change against the baseline 32:8 (negative = cheaper)" in out
    ranked_rows = [
        line for line in out.splitlines() if line.split(" | ")[0] in {"| 1", "| 2", "| 3", "| 4"}
    ]
    assert [row.split(" | ")[1] for row in ranked_rows] == [
        r.config.label
        for r in recommend(EXAMPLE, context=131072, target_loss=2.6).recommendations[:3]
    ]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot.stat().st_size > 20_000


def test_lambda_extremes_move_the_optimum(capsys: pytest.CaptureFixture[str]) -> None:
    best = {}
    for lam in ("1", "0"):
        assert main([*ARGS, "--lambda", lam, "--json"]) == 0
        top = json.loads(capsys.readouterr().out)["recommendations"][0]
        best[lam] = (top["heads"], top["kv_heads"])
    assert best["1"][1] < best["0"][1]  # memory only: fewer KV heads
    assert best["0"][0] < best["1"][0]  # FLOPs only: fewer query heads


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--baseline", "32/8"], "invalid head configuration '32/8': use HEADS:KV_HEADS"),
        (["--baseline", "24:8"], "baseline 24:8 has no runs to fit: choose one of 1:1, 2:1"),
        (["--lambda", "2"], "invalid lambda 2.0: must lie in [0, 1]"),
        (["--target-loss", "1.5"], "target loss 1.5 is unreachable"),
        (["--plot", "out.txt"], "invalid plot file 'out.txt'"),
    ],
)
def test_bad_input_is_one_line_exit_2(
    extra: list[str],
    message: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    args = [*ARGS, *extra]
    if "--target-loss" in extra:
        args = ["recommend", "--runs", str(EXAMPLE), "--context", "128k", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("gqa-retrofit recommend: error: ")
    assert message in err
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_missing_runs_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    missing = tmp_path / "runs.csv"
    assert (
        main(["recommend", "--runs", str(missing), "--context", "4k", "--target-loss", "2.6"]) == 2
    )
    assert capsys.readouterr().err == (
        f"gqa-retrofit recommend: error: runs file {str(missing)!r} does not exist\n"
    )


def test_serving_options_report_per_device_kv_and_warn(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*ARGS, "--tp", "8", "--kv-dtype", "fp8", "--json"]) == 0
    captured = capsys.readouterr()
    data = json.loads(captured.out)
    serving = data["serving"]
    assert (serving["tp"], serving["dcp"], serving["kv_dtype"]) == (8, 1, "fp8")
    best = data["recommendations"][0]
    label = f"{best['heads']}:{best['kv_heads']}"
    entry = serving["by_config"][label]
    if "error" not in entry:
        copies = max(1, 8 // best["kv_heads"])
        heads_per_device = max(1, best["kv_heads"] // 8)
        assert entry["kv_replicas"] == copies
        expected = best["layers"] * 131072 * 2 * heads_per_device * best["head_dim"]  # fp8: 1 B
        assert entry["per_device_kv_cache_bytes"] == expected
        assert ("warning" in entry) == (copies > 1)
        assert ("warning: " + label) in captured.err or copies == 1
    one = serving["by_config"]["32:1"]
    assert one["kv_replicas"] == 8 and one["warning"].startswith("1 KV head(s) at --tp 8")
    assert serving["by_config"]["1:1"]["error"].startswith("--tp 8 does not divide the 1")
