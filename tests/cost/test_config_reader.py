"""The normalized config reader on the traps listed in cost-model.md."""

from __future__ import annotations

import re

import pytest

from gqa_retrofit.cost import read_config
from gqa_retrofit.cost.loading import shape_from_config
from gqa_retrofit.errors import ConfigError, UnsupportedFamilyError
from tests.cost.test_params import load_fixture


def test_explicit_head_dim_differs_from_hidden_over_heads() -> None:
    gemma = read_config(load_fixture("gemma-2-9b"))
    assert (gemma.hidden // gemma.heads, gemma.head_dim) == (224, 256)
    assert read_config(load_fixture("qwen3-8b")).head_dim == 128


def test_missing_kv_heads_means_mha() -> None:
    config = load_fixture("meta-llama-3-8b")
    del config["num_key_value_heads"]
    shape = read_config(config)
    assert (shape.kv_heads, shape.attention_kind) == (32, "mha")


def test_families_that_ignore_kv_heads_and_head_dim() -> None:
    for name in ("gpt2", "pythia-160m", "opt-125m"):
        config = {**load_fixture(name), "num_key_value_heads": 2, "head_dim": 32}
        shape = read_config(config)
        assert (shape.kv_heads, shape.head_dim) == (12, 64), name


def test_gpt2_and_falcon_field_names() -> None:
    gpt2 = read_config(load_fixture("gpt2"))
    assert (gpt2.layers, gpt2.hidden, gpt2.heads, gpt2.ffn, gpt2.positions) == (
        12,
        768,
        12,
        3072,
        1024,
    )
    falcon = read_config(load_fixture("falcon-7b"))
    assert (falcon.heads, falcon.kv_heads, falcon.attention_kind) == (71, 1, "mqa")
    new_arch = {
        **load_fixture("falcon-7b"),
        "new_decoder_architecture": True,
        "num_kv_heads": 8,
        "num_attention_heads": 64,
        "hidden_size": 4096,
    }
    falcon40 = read_config(new_arch)
    # the weights hold 8 KV heads but the cache stores k/v expanded to all 64 query heads
    assert (falcon40.kv_heads, falcon40.cache_heads, falcon40.attention_kind) == (8, 64, "mha")


def test_sliding_window_rules() -> None:
    qwen = read_config(load_fixture("qwen2.5-7b"))  # sliding_window set, use_sliding_window false
    assert qwen.windows == (None,) * 28
    mistral = read_config(load_fixture("mistral-7b-v0.1"))
    assert mistral.windows == (4096,) * 32
    gemma2 = read_config(load_fixture("gemma-2-9b"))
    assert gemma2.windows[:4] == (4096, None, 4096, None)
    gemma3 = read_config(load_fixture("gemma-3-1b-pt"))
    assert [i for i, w in enumerate(gemma3.windows) if w is None] == [5, 11, 17, 23]
    assert set(gemma3.windows) == {512, None}
    qwen_on = {
        **load_fixture("qwen2.5-7b"),
        "use_sliding_window": True,
        "max_window_layers": 20,
        "sliding_window": 4096,
    }
    assert read_config(qwen_on).windows == (None,) * 20 + (4096,) * 8
    explicit = {**load_fixture("gemma-2-9b"), "layer_types": ["full_attention"] * 42}
    assert read_config(explicit).windows == (None,) * 42


def test_text_config_of_multimodal_config() -> None:
    shape = read_config(load_fixture("gemma-3-4b-it"))
    assert shape.text_config and shape.model_type == "gemma3_text"
    assert (shape.layers, shape.hidden, shape.heads, shape.kv_heads) == (34, 2560, 8, 4)
    assert shape.tied_embeddings


def test_moe_and_mla_fields() -> None:
    deepseek = read_config(load_fixture("deepseek-v3"))
    assert deepseek.mla is not None and deepseek.moe is not None
    assert (deepseek.mla.kv_lora_rank, deepseek.mla.qk_rope_head_dim) == (512, 64)
    assert deepseek.moe.moe_layers == (False,) * 3 + (True,) * 58
    assert (deepseek.moe.experts, deepseek.moe.top_k, deepseek.moe.shared_ffn) == (256, 8, 2048)
    assert deepseek.attention_kind == "mla"


def test_missing_field_is_named() -> None:
    config = load_fixture("meta-llama-3-8b")
    del config["hidden_size"]
    with pytest.raises(ConfigError, match=r"no hidden size.*hidden_size"):
        read_config(config)
    with pytest.raises(ConfigError, match="'model_type'"):
        read_config({"hidden_size": 8})


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_attention_heads": 0}, "must be an integer >= 1, got 0"),
        ({"num_attention_heads": -4}, "got -4"),
        ({"num_key_value_heads": 5}, r"heads \(32\) must be a multiple of kv_heads \(5\)"),
        ({"num_hidden_layers": "32"}, "got '32'"),
    ],
)
def test_invalid_geometry(changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        read_config({**load_fixture("meta-llama-3-8b"), **changes})


def test_unknown_family_lists_supported_ones() -> None:
    with pytest.raises(UnsupportedFamilyError, match=r"'no_such_type'.*supported: .*llama"):
        shape_from_config({**load_fixture("meta-llama-3-8b"), "model_type": "no_such_type"})


def test_unknown_family_generic_fallback_checked_by_meta_instantiation() -> None:
    tiny = dict(
        vocab_size=128,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
    )
    # internlm3 is llama-shaped: the generic reading matches the meta instantiation
    shape, generic = shape_from_config({**tiny, "model_type": "internlm3"})
    assert generic and shape.head_dim == 128  # the transformers class default was filled in
    # helium's o_proj is hard-coded hidden -> hidden: the generic reading is refused
    with pytest.raises(UnsupportedFamilyError, match=r"'helium'.*does not match"):
        shape_from_config({**tiny, "model_type": "helium"})


def test_unknown_types_refuse_fast_without_importing_torch() -> None:
    """A type transformers does not know either is refused from the JSON alone, in a fresh
    interpreter, without importing torch or transformers."""
    import json
    import subprocess
    import sys
    import time

    code = (
        "import sys; from gqa_retrofit.cost.loading import shape_from_config\n"
        "from gqa_retrofit.errors import UnsupportedFamilyError\n"
        "try: shape_from_config(" + json.dumps({"model_type": "no_such_type"}) + ")\n"
        "except UnsupportedFamilyError as e: print(e)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    elapsed = time.perf_counter() - start
    message, imported = out.stdout.strip().splitlines()
    assert message.startswith("model type 'no_such_type' is not supported (transformers does not")
    assert imported == "False False"
    assert elapsed < 5  # a bare interpreter start is ~0.1 s on a quiet machine


def test_known_to_transformers_but_hybrid_is_refused_without_the_meta_check() -> None:
    config = {**load_fixture("meta-llama-3-8b"), "model_type": "bamba", "mamba_d_state": 16}
    with pytest.raises(UnsupportedFamilyError, match=r"'bamba'.*'mamba_d_state' layers"):
        shape_from_config(config)


def test_architectures_and_aliases_name_the_family() -> None:
    kimi = {**load_fixture("deepseek-v3"), "model_type": "kimi_k2"}
    shape, generic = shape_from_config(kimi)
    assert not generic and shape.mla is not None
    assert shape.notes == (
        "model type 'kimi_k2' read as deepseek_v3 (architectures names DeepseekV3ForCausalLM)",
    )
    del kimi["architectures"]
    assert read_config(kimi).notes == (
        "model type 'kimi_k2' read as deepseek_v3 (as transformers does)",
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"num_hidden_layers": 10**9}, "'num_hidden_layers' (number of layers) is 1,000,000,000"),
        ({"num_attention_heads": 2**40}, "'num_attention_heads' (number of attention heads)"),
        ({"vocab_size": 10**12}, "'vocab_size' (vocabulary size) is 1,000,000,000,000"),
        ({"hidden_size": 2**31}, "'hidden_size' (hidden size)"),
        ({"intermediate_size": 2**40}, "'intermediate_size' (FFN (intermediate) size)"),
        ({"layer_types": ["full_attention"] * 3}, "'layer_types' has 3 entries for 32 layers"),
    ],
)
def test_hostile_sizes_name_the_field(changes: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(field)):
        read_config({**load_fixture("meta-llama-3-8b"), **changes})
