"""``plan_retrofit`` on SmolLM2-135M's config: reachable configs, exact costs, choice."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gqa_retrofit.errors import ConfigError
from gqa_retrofit.recipe.plan import plan_retrofit, reachable_head_configs
from gqa_retrofit.recipe.prior import PAPER_HEADS_LAWS
from gqa_retrofit.recipe.search import HeadConfig

SMOLLM2 = Path(__file__).parent / "fixtures" / "smollm2-135m"  # llama, 30 x 576, 9 q / 3 kv
REPO = Path(__file__).parents[2]


def test_reachable_configs() -> None:
    assert [c.label for c in reachable_head_configs(9, 3)] == [
        "9:3",
        "9:1",
        "6:3",
        "6:1",
        "3:3",
        "3:1",
        "1:1",
    ]
    assert [c.label for c in reachable_head_configs(8, 8)] == [
        "8:8",
        "8:4",
        "8:2",
        "8:1",
        "4:4",
        "4:2",
        "4:1",
        "2:2",
        "2:1",
        "1:1",
    ]
    assert [c.label for c in reachable_head_configs(32, 8)][:6] == [
        "32:8",
        "32:4",
        "32:2",
        "32:1",
        "24:8",
        "24:4",
    ]
    with pytest.raises(ConfigError, match="invalid source geometry 9:2"):
        reachable_head_configs(9, 2)


def _estimate_cli(*what_if: str) -> dict:
    args = [
        sys.executable,
        "-m",
        "gqa_retrofit.cli.main",
        "estimate",
        str(SMOLLM2),
        "--context",
        "128k",
        "--json",
    ]
    for geometry in what_if:
        args += ["--what-if", geometry]
    result = subprocess.run(
        args,
        capture_output=True,
        text=True,
        check=True,
        env={**__import__("os").environ, "PYTHONPATH": str(REPO / "src")},
    )
    return json.loads(result.stdout)["models"][0]


def test_plan_on_smollm2_costs_equal_estimate_what_if() -> None:
    plan = plan_retrofit(SMOLLM2, context=131072)
    by_label = {o.config.label: o for o in plan.options}
    assert set(by_label) == {"9:3", "9:1", "6:3", "6:1", "3:3", "3:1", "1:1"}
    assert by_label["9:3"].current and not by_label["9:1"].current
    entry = _estimate_cli("9:1", "6:3", "6:1", "3:3", "3:1", "1:1")
    variants = {"9:3": entry} | {f"{w['heads']}:{w['kv_heads']}": w for w in entry["what_if"]}
    for label, option in by_label.items():
        cost = variants[label]["per_context"][0]
        assert option.memory_bytes == cost["memory_bytes"]
        assert option.kv_cache_bytes == cost["kv_cache_bytes"]
        assert option.decode_flops == cost["decode_flops"]
        assert option.prefill_flops == cost["prefill_flops"]
        assert option.params_total == variants[label]["params"]["total"]
    # exact values: 3 -> 1 KV heads shrinks the bf16 cache 3x (23,040 -> 7,680 bytes/token)
    assert by_label["9:3"].kv_cache_bytes == 23040 * 131072
    assert by_label["9:1"].kv_cache_bytes == 7680 * 131072
    # ranking by Z, Pareto front in (memory, FLOPs)
    assert [o.rank for o in plan.options] == list(range(1, 8))
    assert all(a.z <= b.z for a, b in zip(plan.options, plan.options[1:]))
    assert [o.config.label for o in plan.options if o.pareto] == ["1:1"]
    # the default keeps all 9 query heads: the KV-only retrofit 9:1
    assert plan.chosen is not None and plan.chosen.config == HeadConfig(9, 1)
    assert plan.command == (f"gqa-retrofit convert {SMOLLM2} smollm2-135m-h9-kv1 --kv-heads 1")
    # the paper's prior is labelled as its own fit, and only for query-head changes
    assert "not a prediction for this model" in plan.prior_label
    assert by_label["9:1"].prior_loss_delta is None
    law = PAPER_HEADS_LAWS[0]  # 470M, the nearest size to 106M non-embedding parameters
    assert by_label["3:1"].prior_loss_delta == pytest.approx(law.loss(3) - law.loss(9))


def test_budget_and_min_heads_steer_the_choice(tmp_path: Path) -> None:
    plan = plan_retrofit(SMOLLM2, context=131072, memory_budget=2**30)
    assert plan.chosen is None and plan.command is None  # 9:1 needs 1.18 GiB
    assert [o.within_budget for o in plan.options] == [False] * 7
    plan = plan_retrofit(
        SMOLLM2,
        context=131072,
        memory_budget=2**30 * 1.2,
        max_flops=4e9,
        min_heads=3,
        out=str(tmp_path / "out"),
    )
    assert plan.chosen is not None and plan.chosen.config == HeadConfig(3, 1)
    assert plan.command == (
        f"gqa-retrofit convert {SMOLLM2} {tmp_path / 'out'} --kv-heads 1 --heads 3"
    )
    assert {o.config.label for o in plan.options if o.within_budget} == {"3:1", "1:1"}
    # an MQA model keeping its query heads has nothing cheaper to convert to
    config = json.loads((SMOLLM2 / "config.json").read_text())
    (tmp_path / "mqa").mkdir()
    (tmp_path / "mqa" / "config.json").write_text(json.dumps({**config, "num_key_value_heads": 1}))
    mqa = plan_retrofit(tmp_path / "mqa", context=4096)
    assert mqa.chosen is not None and mqa.chosen.current and mqa.command is None
    assert [o.config.label for o in mqa.options][-1] == "9:1"  # the most expensive
    with pytest.raises(ConfigError, match=r"invalid min_heads 12: must lie in 1\.\.9"):
        plan_retrofit(SMOLLM2, context=4096, min_heads=12)


@pytest.mark.integration
def test_plan_on_the_embedded_model_equals_the_fixture() -> None:
    from gqa_retrofit.assets import default_model_dir

    real = plan_retrofit(default_model_dir(), context=131072)
    fixture = plan_retrofit(SMOLLM2, context=131072)
    assert [(o.config, o.params_total, o.memory_bytes, o.decode_flops) for o in real.options] == [
        (o.config, o.params_total, o.memory_bytes, o.decode_flops) for o in fixture.options
    ]
    assert real.options[-1].params_total == 134_515_008  # SmolLM2-135M, 9 q / 3 kv (current)
    assert real.chosen is not None and real.chosen.config == HeadConfig(9, 1)
    assert real.command is not None and real.command.endswith("--kv-heads 1")
