"""estimate(): inputs, the design.md JSON entry, what-ifs with savings, Markdown, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gqa_retrofit.cost import estimate, estimate_what_if, reports_to_markdown
from gqa_retrofit.errors import ConfigError, ModelSourceError
from tests.cost.test_params import FIXTURES, load_fixture

LLAMA3 = FIXTURES / "meta-llama-3-8b.json"


def test_json_entry_has_design_contract_keys() -> None:
    entry = estimate(LLAMA3, contexts=(4096, 32768)).to_dict()
    assert entry["model"] == str(LLAMA3)
    assert entry["model_type"] == "llama"
    assert entry["params"] == {
        "total": 8_030_261_248,
        "embedding": 1_050_673_152,
        "non_embedding": 6_979_588_096,
        "active": 8_030_261_248,
    }
    assert entry["attention"] | {} == {
        "layers": 32,
        "heads": 32,
        "kv_heads": 8,
        "head_dim": 128,
        "kind": "gqa",
        "sliding_layers": 0,
        "chunked_layers": 0,
        "sliding_window": None,
        "full_attention_layers": 32,
        "state_layers": 0,
    }
    assert entry["kv_cache_bytes_per_token"] == 131_072
    first, second = entry["per_context"]
    assert first["context"] == 4096 and second["context"] == 32768
    assert first["kv_cache_bytes"] == 131_072 * 4096
    assert first["memory_bytes"] == 2 * 8_030_261_248 + 131_072 * 4096
    assert first["beyond_max_position"] is False and second["beyond_max_position"] is True
    assert all(isinstance(first[k], int) for k in ("decode_flops", "prefill_flops"))
    json.dumps(entry)  # serialisable


def test_decode_flops_close_to_paper_formula_for_dense_model() -> None:
    report = estimate(LLAMA3, contexts=(131072,))
    cost = report.per_context[0]
    # eq. 3 with N = non-embedding params counts 2 FLOPs per norm weight and no lm_head matmul
    lm_head = 2 * 128_256 * 4096
    norms = 2 * (32 * 2 + 1) * 4096
    assert cost.decode_flops - lm_head + norms == cost.paper_c_infer


def test_what_if_savings() -> None:
    report = estimate(LLAMA3, contexts=(4096, 131072), what_if=[(32, 4), (8, 1, 128)])
    assert [w.geometry for w in report.what_if] == [(32, 4, None), (8, 1, 128)]
    half_kv = report.what_if[0]
    assert half_kv.kv_cache_bytes_per_token == 65_536
    assert half_kv.savings_percent(0)["kv_cache_bytes"] == 50.0
    mqa = report.to_dict()["what_if"][1]
    assert (mqa["heads"], mqa["kv_heads"], mqa["head_dim"]) == (8, 1, 128)
    assert mqa["attention"]["kind"] == "mqa"
    saved = mqa["per_context"][1]["savings_percent"]
    assert saved["kv_cache_bytes"] == 87.5
    base, new = report.per_context[1], report.what_if[1].per_context[1]
    assert saved["decode_flops"] == round(
        100 * (base.decode_flops - new.decode_flops) / base.decode_flops, 2
    )
    assert 0 < saved["decode_flops"] < saved["kv_cache_bytes"]
    assert estimate_what_if(LLAMA3, 32, 4).kv_cache_bytes_per_token == 65_536


def test_what_if_decoupled_head_dim_matches_meta_params() -> None:
    from gqa_retrofit.cost.loading import meta_param_count

    variant = estimate(LLAMA3, what_if=[(24, 8, 64)]).what_if[0]
    # a decoupled head (24 * 64 != 4096) expressed as a mistral config of the same weights
    config = {
        **load_fixture("meta-llama-3-8b"),
        "model_type": "mistral",
        "num_attention_heads": 24,
        "num_key_value_heads": 8,
        "head_dim": 64,
    }
    assert variant.params.total == meta_param_count(config)


def test_sliding_and_moe_models_in_report() -> None:
    gemma = estimate(FIXTURES / "gemma-2-9b.json", contexts=(8192,))
    cost = gemma.per_context[0]
    per_layer = 2 * 8 * 256 * 2
    assert cost.kv_cache_bytes == 21 * per_layer * 8192 + 21 * per_layer * 4095
    assert gemma.to_dict()["attention"]["sliding_layers"] == 21
    mixtral = estimate(FIXTURES / "mixtral-8x7b-v0.1.json").to_dict()
    assert mixtral["params"]["active"] < mixtral["params"]["total"]


def test_dtype_batch_and_kv_dtype() -> None:
    report = estimate(LLAMA3, contexts=(1000,), dtype="int4", kv_dtype="fp8", batch=3)
    cost = report.per_context[0]
    assert report.kv_cache_bytes_per_token == 65_536
    assert cost.kv_cache_bytes == 3 * 65_536 * 1000
    assert cost.memory_bytes == 8_030_261_248 // 2 + cost.kv_cache_bytes


def test_inputs_dir_file_dict_and_pretrained_config(tmp_path: Path) -> None:
    from transformers import AutoConfig

    model_dir = tmp_path / "llama3"
    model_dir.mkdir()
    shutil.copy(LLAMA3, model_dir / "config.json")
    totals = {
        estimate(model_dir).params.total,
        estimate(str(LLAMA3)).params.total,
        estimate(load_fixture("meta-llama-3-8b")).params.total,
        estimate(AutoConfig.for_model(**load_fixture("meta-llama-3-8b"))).params.total,
    }
    assert totals == {8_030_261_248}


def test_markdown_table() -> None:
    report = estimate(LLAMA3, contexts=(4096, 131072), what_if=[(32, 4)])
    text = report.to_markdown()
    assert "8,030,261,248 parameters" in text
    assert "131,072 bytes/token (bf16)" in text
    assert "| 128K * | 16 GiB |" in text  # beyond max_position_embeddings is flagged
    assert "8 GiB (−50%)" in text
    both = reports_to_markdown([report, estimate(FIXTURES / "gpt2.json")])
    assert both.count("\n| ") == 1 + 4 + 3  # header + llama rows (2 + 2 what-if) + gpt2 rows


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"contexts": (0,)}, "context length must be a positive integer, got 0"),
        ({"dtype": "fp64"}, "unknown dtype 'fp64'; valid: fp32, bf16"),
        ({"kv_dtype": "q3"}, "unknown KV dtype 'q3'; valid: fp32, bf16, fp16, fp8, fp8_e4m3"),
        ({"batch": 0}, "batch must be a positive integer"),
        ({"what_if": [(32, 5)]}, r"heads \(32\) must be a multiple of kv_heads \(5\)"),
        ({"what_if": [(0, 1)]}, "heads must be a positive integer, got 0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        estimate(LLAMA3, **kwargs)


def test_bad_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelSourceError, match=r"no such file: .*config\.json"):
        estimate(str(tmp_path / "missing" / "config.json"))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="is not valid JSON"):
        estimate(bad)
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]")
    with pytest.raises(ConfigError, match="must hold a JSON object"):
        estimate(listing)
    with pytest.raises(ConfigError, match="MLA"):
        estimate(FIXTURES / "deepseek-v3.json", what_if=[(8, 1)])


def test_hub_id_offline_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(
        ModelSourceError, match=r"cannot resolve Hub model 'no-org/no-model'.*HF_HUB_OFFLINE"
    ):
        estimate("no-org/no-model")


def test_paper_quantities_and_z_weights() -> None:
    from gqa_retrofit.cost import paper

    cost = estimate(LLAMA3, contexts=(8192,)).per_context[0]
    n = 6_979_588_096
    assert cost.paper_c_infer == paper.c_infer(n, 8192, 32, 128, 32)
    assert cost.paper_m_infer == paper.m_infer(n, 8192, 32, 128, 8)
    assert cost.paper_z == paper.z_objective(cost.paper_m_infer, cost.paper_c_infer)
    memory_only = estimate(LLAMA3, contexts=(8192,), z_weights=(1.0, 0.5, 1.0)).per_context[0]
    assert memory_only.paper_z == pytest.approx(cost.paper_m_infer**0.5)


def test_hub_id_from_hf_cache_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """A Hub id resolves through huggingface_hub's cache (config.json only) when offline."""
    import huggingface_hub.constants

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = Path(huggingface_hub.constants.HF_HUB_CACHE) / "models--acme--llama3-shaped"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    shutil.copy(LLAMA3, snapshot / "config.json")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    try:
        assert estimate("acme/llama3-shaped").params.total == 8_030_261_248
        pinned = estimate("acme/llama3-shaped", revision=commit)
        assert pinned.model == "acme/llama3-shaped"
        assert pinned.kv_cache_bytes_per_token == 131_072
        with pytest.raises(ModelSourceError, match="acme/llama3-shaped"):
            estimate("acme/llama3-shaped", revision="f" * 40)
    finally:
        shutil.rmtree(repo)
