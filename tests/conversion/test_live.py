"""patch_model on live tiny models: parity with the HF original, exact expansion, undo, refusals."""

from __future__ import annotations

import warnings

import pytest
import torch

from gqa_retrofit.conversion.live import patch_model, unpatch
from gqa_retrofit.errors import ConfigError
from tiny_models import TINY_FAMILIES, tiny_model

CUSTOM = {"gpt2": "gpt2_gqa", "gpt_neox": "gpt_neox_gqa", "opt": "opt_gqa", "falcon": "falcon_gqa"}


def _inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    torch.manual_seed(1)
    ids = torch.randint(3, 128, (2, 8))
    mask = torch.ones_like(ids)
    mask[1, :3] = 0  # row 1 is left-padded by 3
    ids[1, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    return ids, mask, positions


def _logits(model, ids, mask=None, positions=None) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, position_ids=positions).logits


def _cached_logits(model, ids: torch.Tensor, split: int) -> torch.Tensor:
    """Logits of ``ids[:, split:]`` computed one token at a time on a cache of the prefix."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)  # filled in place by every forward
    with torch.no_grad():
        out = model(input_ids=ids[:, :split], cache=cache, use_cache=True)
        steps = [out.logits[:, -1:]]
        for pos in range(split, ids.shape[1] - 1):
            out = model(input_ids=ids[:, pos : pos + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
    return torch.cat(steps, dim=1)


@pytest.mark.parametrize("impl", ["eager", "sdpa"])
@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_unchanged_geometry_matches_hf_original(family: str, impl: str) -> None:
    if family == "gemma2" and impl == "sdpa":
        pytest.skip("transformers' Gemma2 refuses sdpa (documented in hf-facts.md)")
    original = tiny_model(family, attn_implementation=impl)
    patched = tiny_model(family, attn_implementation=impl)
    report = patch_model(patched)
    assert report.before == report.after
    assert report.model_type_after == CUSTOM.get(family, family)
    if family in CUSTOM:
        assert type(patched).__name__.endswith("GQAForCausalLM")
    ids, mask, positions = _inputs()
    expected = _logits(original, ids, mask, positions)
    padded = _logits(patched, ids, mask, positions)
    torch.testing.assert_close(padded[mask.bool()], expected[mask.bool()])
    # the left-padded row equals the same tokens run alone without padding
    alone = _logits(patched, ids[1:, 3:])
    torch.testing.assert_close(padded[1, 3:], alone[0], rtol=1e-4, atol=1e-5)
    # cache: token-by-token decoding equals the full forward
    full = _logits(patched, ids[:1])
    torch.testing.assert_close(
        _cached_logits(patched, ids[:1], 4), full[:, 3:-1], rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_expand_to_mha_and_mean_pool_back_are_exact(family: str) -> None:
    model = tiny_model(family)
    heads = model.config.num_attention_heads
    if family in ("gpt2", "gpt_neox", "opt"):
        patch_model(model, kv_heads=2)  # MHA originals: start from a GQA variant
    ids, mask, positions = _inputs()
    reference = _logits(model, ids, mask, positions)
    first = patch_model(model, kv_heads=heads)
    assert first.after.kv_heads == heads
    torch.testing.assert_close(_logits(model, ids, mask, positions), reference, rtol=0, atol=2e-6)
    second = patch_model(model, kv_heads=first.before.kv_heads)
    assert second.records[0]["groups"]  # mean pooling recorded its grouping
    torch.testing.assert_close(_logits(model, ids, mask, positions), reference, rtol=0, atol=2e-6)
    unpatch(model, second)
    unpatch(model, first)
    assert torch.equal(_logits(model, ids, mask, positions), reference)


def test_pooling_changes_weights_by_the_group_mean() -> None:
    model = tiny_model("llama", num_key_value_heads=4)
    k = model.model.layers[0].self_attn.k_proj.weight.detach().clone()
    report = patch_model(model, kv_heads=2)
    pooled = model.model.layers[0].self_attn.k_proj.weight
    assert pooled.shape == (32, 64)
    torch.testing.assert_close(pooled[:16], (k[:16] + k[16:32]) / 2)
    assert report.to_dict()["after"] == {"heads": 4, "kv_heads": 2, "head_dim": 16}
    assert report.records[0] == {"layer": 0, "groups": [[0, 1], [2, 3]]}


def test_unpatch_refuses_after_a_second_patch() -> None:
    model = tiny_model("qwen2")
    first = patch_model(model, kv_heads=4)
    patch_model(model, kv_heads=1)
    with pytest.raises(ConfigError, match=r"cannot unpatch: model\.layers\.0\.self_attn"):
        unpatch(model, first)


def test_random_init_changes_head_dim_and_trains() -> None:
    model = tiny_model("qwen3")
    report = patch_model(model, heads=8, kv_heads=2, head_dim=32, init="random")
    attn = model.model.layers[0].self_attn
    assert attn.q_proj.weight.shape == (256, 64) and attn.k_proj.weight.shape == (64, 64)
    assert attn.q_norm.weight.shape == (32,)
    assert model.model.rotary_emb.inv_freq.shape == (16,)
    assert report.after.head_dim == 32
    ids = torch.randint(3, 128, (2, 12))
    assert model(ids, labels=ids).loss.isfinite()


def test_mean_cannot_change_head_dim_or_heads() -> None:
    with pytest.raises(ConfigError, match="cannot change head_dim 16 -> 32; use init='random'"):
        patch_model(tiny_model("llama"), head_dim=32)
    with pytest.raises(ConfigError, match="method 'mean' keeps the 4 query heads"):
        patch_model(tiny_model("llama"), heads=8, kv_heads=2)


def test_unknown_init_lists_methods() -> None:
    with pytest.raises(ConfigError, match=r"unknown pooling method 'nope'; available: .*mean"):
        patch_model(tiny_model("llama"), kv_heads=1, init="nope")


def test_peft_wrapped_model_is_refused() -> None:
    from peft import LoraConfig, get_peft_model

    with warnings.catch_warnings():  # peft 0.21 touches a deprecated transformers property
        warnings.simplefilter("ignore", FutureWarning)
        wrapped = get_peft_model(tiny_model("llama"), LoraConfig(r=2, target_modules=["q_proj"]))
    with pytest.raises(ConfigError, match=r"wrapped by peft: merge .*merge_and_unload"):
        patch_model(wrapped, kv_heads=1)
    merged = wrapped.merge_and_unload()
    assert patch_model(merged, kv_heads=1).after.kv_heads == 1


def test_quantized_model_is_refused() -> None:
    # no CPU quantization backend is installed; a model loaded from a quantized checkpoint
    # carries its quantization_config, which is what patch_model checks
    model = tiny_model("llama")
    model.config.quantization_config = {"quant_method": "bitsandbytes", "load_in_4bit": True}
    with pytest.raises(ConfigError, match="model is quantized: patch the unquantized model"):
        patch_model(model, kv_heads=1)


def test_llama_live_model_cannot_take_heads_not_dividing_hidden() -> None:
    with pytest.raises(ConfigError, match="use patch_config/convert, which write a mistral"):
        patch_model(tiny_model("llama"), heads=6, kv_heads=3, init="random")


# Native families with a table entry but no tiny model in tests/tiny_models.py
_EXTRA = {
    "ministral": {"head_dim": 16},
    "qwen3_moe": {"num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 32},
    "gemma": {},
    "starcoder2": {},
    "granite": {},
    "cohere": {},
    "smollm3": {},
}


@pytest.mark.parametrize("family", sorted(_EXTRA))
def test_other_native_families_expand_and_pool_back_exactly(family: str) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    from tiny_models import _BASE

    config = AutoConfig.for_model(family, **{**_BASE, **_EXTRA[family]})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    ids, mask, positions = _inputs()
    reference = _logits(model, ids, mask, positions)
    assert patch_model(model, kv_heads=4).model_type_after == family
    torch.testing.assert_close(_logits(model, ids, mask, positions), reference, rtol=0, atol=2e-6)
    patch_model(model, kv_heads=2)
    torch.testing.assert_close(_logits(model, ids, mask, positions), reference, rtol=0, atol=2e-6)


def test_olmo2_layer_wide_k_norm_is_refused_not_dropped() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM

    from tiny_models import _BASE

    model = AutoModelForCausalLM.from_config(AutoConfig.for_model("olmo2", **_BASE))
    with pytest.raises(ConfigError, match=r"k_norm.weight has shape \(32,\) tied to the head"):
        patch_model(model, kv_heads=1)
    assert patch_model(model).after.kv_heads == 2  # unchanged geometry is fine


@pytest.mark.parametrize(
    "layout",
    [
        {"new_decoder_architecture": False, "multi_query": True},  # falcon-7b style MQA
        {"new_decoder_architecture": False, "multi_query": False, "num_kv_heads": 4},  # MHA
        {"new_decoder_architecture": False, "parallel_attn": False, "bias": True},
    ],
)
def test_older_falcon_layouts_match_as_falcon_gqa(layout: dict) -> None:
    original = tiny_model("falcon", **layout)
    patched = tiny_model("falcon", **layout)
    report = patch_model(patched)
    assert report.model_type_after == "falcon_gqa"
    ids, mask, positions = _inputs()
    torch.testing.assert_close(
        _logits(patched, ids, mask, positions)[mask.bool()],
        _logits(original, ids, mask, positions)[mask.bool()],
    )
