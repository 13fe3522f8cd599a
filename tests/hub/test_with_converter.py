"""Hub ids into the converter, and verify-before-push, with the real converter's output."""

from __future__ import annotations

import json

import pytest

from gqa_retrofit.conversion import convert
from gqa_retrofit.errors import ConversionError
from gqa_retrofit.hub.push import push_to_hub
from hub_server import USER

REPO = f"{USER}/tiny-llama"
EXTRA = {"pytorch_model.bin": b"never loaded", "optimizer.pt": b"x" * 64, "onnx/model.onnx": b"o"}


def test_convert_a_hub_id_downloads_only_what_it_needs(hub_server, tiny_llama_dir, tmp_path):
    from huggingface_hub import ModelCard

    files = {p.name: p.read_bytes() for p in tiny_llama_dir.iterdir()}
    commit = hub_server.add_repo(REPO, {**files, **EXTRA})
    out = tmp_path / "out"
    convert.convert_checkpoint(REPO, out, kv_heads=1)
    assert sorted(hub_server.downloaded(REPO)) == sorted(files)  # none of EXTRA
    manifest = json.loads((out / "gqa_retrofit.json").read_text())
    assert manifest["source"]["revision"] == commit  # pinned to what was downloaded
    assert manifest["base_model"] == manifest["source"]["base_model"] == REPO  # automatically

    # the card of a Hub-sourced conversion names its base model; push verifies and uploads
    url = push_to_hub(out, f"{USER}/tiny-llama-gqa1")
    assert url.endswith(f"/{USER}/tiny-llama-gqa1")
    card = ModelCard(hub_server.files(f"{USER}/tiny-llama-gqa1")["README.md"].decode())
    assert card.data.base_model == REPO
    assert f"gqa-retrofit convert {REPO} OUT --kv-heads 1" in card.text


def test_push_refuses_a_checkpoint_that_fails_verification(hub_server, tiny_llama_dir, tmp_path):
    out = tmp_path / "out"
    convert.convert_checkpoint(tiny_llama_dir, out, kv_heads=1)
    config = json.loads((out / "config.json").read_text())
    config["num_key_value_heads"] = 2  # no longer matches the weights
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ConversionError, match="fails verification, not pushing"):
        push_to_hub(out, f"{USER}/broken")
    assert hub_server.repos == {}  # nothing was created
