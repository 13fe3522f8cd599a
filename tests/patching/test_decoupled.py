"""Decoupled heads (n_h * d_h != d) for every family: build, train, generate, cache size, save,
reload in fresh processes (custom types also where gqa_retrofit cannot be imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.arch.layout import attention_geometry
from gqa_retrofit.patching import CUSTOM_TYPES, patch_config
from tiny_models import TINY_FAMILIES, tiny_config

HEADS, KV_HEADS, HEAD_DIM = 6, 2, 8  # 6 * 8 = 48 != hidden 64, and 64 % 6 != 0
IDS = [[5, 17, 3, 99, 42, 7, 64, 12, 8], [9, 33, 71, 4, 18, 27, 101, 6, 55]]


def _build(family: str):
    from transformers import AutoModelForCausalLM

    config = patch_config(tiny_config(family), heads=HEADS, kv_heads=KV_HEADS, head_dim=HEAD_DIM)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every family's decoupled model, saved with the logits it gives on IDS."""
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("decoupled")
    out = {}
    for family in TINY_FAMILIES:
        model = _build(family).eval()
        path = root / family
        model.save_pretrained(path)
        with torch.no_grad():
            logits = model(torch.tensor(IDS)).logits
        save_file({"logits": logits.contiguous()}, str(path / "expected_logits.safetensors"))
        out[family] = path
    return out


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_decoupled_builds_trains_and_generates(family: str) -> None:
    model = _build(family)
    spec = get_family(model.config.model_type)
    assert attention_geometry(spec, model.config).heads * HEAD_DIM != model.config.hidden_size
    q_rows = (HEADS + 2 * KV_HEADS) * HEAD_DIM
    shapes = [tuple(p.shape) for n, p in model.named_parameters() if "layers.0." in n or ".0." in n]
    assert (HEADS * HEAD_DIM, 64) in shapes or (q_rows, 64) in shapes or (64, q_rows) in shapes

    # left padding: the padded row's logits equal the same tokens run alone
    model.eval()
    ids = torch.tensor(IDS)
    mask = torch.ones_like(ids)
    mask[1, :3] = 0
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        padded = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
        alone = model(input_ids=ids[1:, 3:]).logits
    torch.testing.assert_close(padded[1, 3:], alone[0], rtol=1e-4, atol=1e-5)

    model.train()
    model.activation_checkpointing_enable()
    batch = torch.tensor(IDS)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        loss = model(input_ids=batch, labels=batch, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses

    model.eval()
    prompt = batch[:, :4]
    kwargs = {"max_new_tokens": 4, "do_sample": False, "pad_token_id": 0}
    with torch.no_grad():
        cached = model.generate(prompt, use_cache=True, **kwargs)
        uncached = model.generate(prompt, use_cache=False, **kwargs)
    assert cached.shape[1] > prompt.shape[1]
    assert torch.equal(cached, uncached)


@pytest.mark.parametrize("family", TINY_FAMILIES)
def test_kv_cache_holds_kv_heads_times_head_dim(family: str) -> None:
    from transformers import DynamicCache

    model = _build(family).eval()
    batch, seq = 2, 6  # below gemma's sliding window of 8: no layer caps its length
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        model(input_ids=torch.tensor(IDS)[:, :seq], cache=cache, use_cache=True)
    layers = model.config.num_hidden_layers
    assert len(cache.layers) == layers
    total = 0
    for layer in cache.layers:
        assert tuple(layer.keys.shape) == (batch, KV_HEADS, seq, HEAD_DIM)
        assert tuple(layer.values.shape) == (batch, KV_HEADS, seq, HEAD_DIM)
        total += layer.keys.numel() * layer.keys.element_size() * 2
    assert total == 2 * layers * batch * seq * KV_HEADS * HEAD_DIM * 4  # fp32


def test_original_falcon_caches_every_head_and_falcon_gqa_does_not() -> None:
    from transformers import DynamicCache

    from gqa_retrofit.conversion.live import patch_model
    from tiny_models import tiny_model

    model = tiny_model("falcon")  # 4 query heads, num_kv_heads=2
    ids = torch.tensor(IDS)[:, :5]
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        expected = model(input_ids=ids, cache=cache, use_cache=True).logits
    assert cache.layers[0].keys.shape[1] == 4  # broadcast to all heads by transformers' falcon
    patch_model(model)
    cache = DynamicCache(config=model.config)
    with torch.no_grad():
        logits = model(input_ids=ids, cache=cache, use_cache=True).logits
    assert cache.layers[0].keys.shape[1] == 2
    torch.testing.assert_close(logits, expected)


def _run(script: str, *args: str, isolated: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    command = [sys.executable]
    if isolated:
        command.append("-I")  # ignores PYTHONPATH and user site; the script also blocks imports
    return subprocess.run(
        [*command, "-c", textwrap.dedent(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


_RELOAD = """
    import sys
    {prelude}
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM
    ids = torch.tensor({ids})
    for path in sys.argv[1:]:
        model = AutoModelForCausalLM.from_pretrained(path, {kwargs}).eval()
        with torch.no_grad():
            logits = model(ids).logits
        expected = load_file(path + "/expected_logits.safetensors")["logits"]
        torch.testing.assert_close(logits, expected)
        print(path.rsplit("/", 1)[-1], model.config.model_type, type(model).__name__)
    assert {check}
"""

_BLOCK = """
    import importlib.abc
    class _NoGQARetrofit(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] == "gqa_retrofit":
                raise ModuleNotFoundError("gqa_retrofit is blocked in this process")
    sys.meta_path.insert(0, _NoGQARetrofit())
"""


def test_reload_in_fresh_process_with_gqa_retrofit(saved: dict[str, Path]) -> None:
    script = _RELOAD.format(
        prelude="import gqa_retrofit.patching", ids=IDS, kwargs="", check="True"
    )
    result = _run(script, *(str(p) for p in saved.values()))
    assert result.returncode == 0, result.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines())
    assert set(lines) == set(TINY_FAMILIES)
    assert lines["llama"].startswith("mistral ")  # 64 % 6 != 0: llama's equivalent type
    assert lines["gpt2"] == "gpt2_gqa GPT2GQAForCausalLM"


def test_custom_types_reload_without_gqa_retrofit(saved: dict[str, Path]) -> None:
    custom = {
        f: p
        for f, p in saved.items()
        if json.loads((p / "config.json").read_text())["model_type"] in CUSTOM_TYPES
    }
    assert set(custom) == {"falcon", "gemma2", "gemma3_text", "gpt2", "gpt_neox", "opt"}
    for path in custom.values():
        assert "auto_map" in json.loads((path / "config.json").read_text())
    script = _RELOAD.format(
        prelude=_BLOCK,
        ids=IDS,
        kwargs="trust_remote_code=True",
        check="not any(m.startswith('gqa_retrofit') for m in sys.modules)",
    )
    result = _run(script, *(str(p) for p in custom.values()), isolated=True)
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(result.stdout.splitlines()) == len(custom)
    assert "gpt_neox gpt_neox_gqa GPTNeoXGQAForCausalLM" in result.stdout
