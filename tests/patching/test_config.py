"""patch_config: native types stay native, fallbacks and custom types, bad input."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.arch.geometry import Geometry
from gqa_retrofit.arch.layout import attention_geometry
from gqa_retrofit.errors import ConfigError, UnsupportedFamilyError
from gqa_retrofit.patching import patch_config
from gqa_retrofit.patching.config import equivalent_config
from tiny_models import TINY_FAMILIES, tiny_config

NATIVE = ["gemma2", "gemma3_text", "llama", "mistral", "mixtral", "phi3", "qwen2", "qwen3"]
CUSTOM = {"gpt2": "gpt2_gqa", "gpt_neox": "gpt_neox_gqa", "opt": "opt_gqa", "falcon": "falcon_gqa"}


def _geometry(config) -> Geometry:
    return attention_geometry(get_family(config.model_type), config)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_decoupled_geometry_keeps_native_types_native(family: str) -> None:
    source = tiny_config(family)
    before = source.to_dict()
    patched = patch_config(source, heads=8, kv_heads=2, head_dim=32)  # 8 * 32 = 256 != 64
    assert source.to_dict() == before  # input not mutated
    assert patched is not source
    assert patched.model_type == (family if family in NATIVE else CUSTOM[family])
    assert _geometry(patched) == Geometry(2, 64, 8, 2, 32)
    assert patched.hidden_size == 64
    assert patched.vocab_size == source.vocab_size


def test_llama_with_heads_not_dividing_hidden_maps_to_mistral_with_same_rope() -> None:
    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64,
    }
    source = tiny_config("llama", rope_parameters=rope)
    patched = patch_config(source, heads=6, kv_heads=3, head_dim=8)
    assert patched.model_type == "mistral"
    assert patched.rope_parameters == source.rope_parameters
    assert patched.sliding_window is None
    assert _geometry(patched) == Geometry(2, 64, 6, 3, 8)


def test_mistral_equivalent_of_llama_gives_equal_logits() -> None:
    from transformers import AutoModelForCausalLM

    rope = {
        "rope_type": "llama3",
        "rope_theta": 500000.0,
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    source = tiny_config("llama", rope_parameters=rope, head_dim=24)  # decoupled, llama accepts
    torch.manual_seed(0)
    llama = AutoModelForCausalLM.from_config(source).eval()
    mistral_config = equivalent_config(source)
    assert mistral_config.model_type == "mistral"
    mistral = AutoModelForCausalLM.from_config(mistral_config).eval()
    assert type(mistral).__name__ == "MistralForCausalLM"
    mistral.load_state_dict(llama.state_dict())
    ids = torch.randint(3, 128, (2, 40))  # past original_max_position_embeddings: scaled RoPE
    with torch.no_grad():
        torch.testing.assert_close(mistral(ids).logits, llama(ids).logits, rtol=0, atol=0)


def test_llama_bias_has_no_mistral_equivalent() -> None:
    source = tiny_config("llama", attention_bias=True)
    with pytest.raises(ConfigError, match="mistral lacks attention_bias=True"):
        patch_config(source, heads=6, kv_heads=3, head_dim=8)


@pytest.mark.parametrize("family", ["gemma2", "gemma3_text"])
def test_gemma_with_heads_not_dividing_hidden_uses_config_only_type(family: str) -> None:
    patched = patch_config(tiny_config(family), heads=6, kv_heads=2, head_dim=16)
    assert patched.model_type == f"{family}_gqa"
    assert _geometry(patched) == Geometry(2, 64, 6, 2, 16)


def test_falcon_layouts_all_become_grouped_custom_type() -> None:
    mqa = tiny_config("falcon", new_decoder_architecture=False, multi_query=True)
    patched = patch_config(mqa)
    assert patched.model_type == "falcon_gqa"
    assert patched.num_kv_heads == 1
    assert patched.new_decoder_architecture is False  # layer structure kept


def test_unset_values_keep_source() -> None:
    patched = patch_config(tiny_config("qwen3"), kv_heads=1)
    assert _geometry(patched) == Geometry(2, 64, 4, 1, 16)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"heads": 6, "kv_heads": 4},
            "heads=6 is not divisible by kv_heads=4; valid kv_heads: 1, 2, 3, 6",
        ),
        ({"kv_heads": 0}, "kv_heads must be a positive integer, got 0"),
        ({"heads": -2}, "heads must be a positive integer, got -2"),
        ({"head_dim": 2.5}, "head_dim must be a positive integer, got 2.5"),
        ({"head_dim": 15}, r"head_dim=15 must be even with rotary embeddings \(llama\)"),
    ],
)
def test_bad_geometry_is_one_line_config_error(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        patch_config(tiny_config("llama"), **kwargs)
    assert "\n" not in str(info.value)


def test_odd_head_dim_is_fine_without_rope() -> None:
    assert _geometry(patch_config(tiny_config("gpt2"), head_dim=15)).head_dim == 15


def test_partial_rotary_needs_even_rotary_dims() -> None:
    config = tiny_config("gpt_neox", rotary_pct=0.25)
    with pytest.raises(ConfigError, match=r"partial_rotary_factor 0\.25 = 5"):
        patch_config(config, head_dim=20)


def test_unsupported_family_lists_supported() -> None:
    from transformers import AutoConfig

    config = AutoConfig.for_model("bert", hidden_size=64, num_attention_heads=4)
    with pytest.raises(
        UnsupportedFamilyError, match=r"'bert' cannot be patched; supported: .*gpt2"
    ):
        patch_config(config, kv_heads=2)


def test_falcon_alibi_is_refused() -> None:
    with pytest.raises(ConfigError, match="alibi=True is not supported"):
        patch_config(tiny_config("falcon", alibi=True))
