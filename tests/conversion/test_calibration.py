"""CalibrationSession: streamed activations equal the real model's, one layer at a time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.conversion.calibration import (
    CalibrationSession,
    attention_weights,
    build_attention,
    calibration_windows,
    fingerprint,
)
from gqa_retrofit.conversion.pooling import HeadTarget, mean_pooling
from gqa_retrofit.errors import ConversionError, DataError
from tests.conversion._calib import random_text, word_tokenizer
from tiny_models import save_tiny_model, tiny_model

SEQ = 32
WINDOW = 256  # calibration windows of a tiny model: its position limit


@pytest.fixture(scope="module")
def text(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return random_text(tmp_path_factory.mktemp("text") / "calib.txt", 1000)


def _layer_outputs(model, ids: torch.Tensor) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    hooks = [
        layer.register_forward_hook(lambda _m, _a, o: outs.append(o))
        for layer in model.model.layers
    ]
    with torch.no_grad():
        model(input_ids=ids)
    for h in hooks:
        h.remove()
    return outs


@pytest.mark.parametrize("model_type", ["llama", "qwen3", "phi3"])
def test_identity_stream_matches_the_model(model_type: str, tmp_path: Path, text: Path) -> None:
    src = save_tiny_model(tmp_path / "m", model_type)
    model = tiny_model(model_type)
    spec = get_family(model_type)
    session = CalibrationSession(
        src, model.config, [text], tokens=6 * SEQ, seq_len=SEQ, tokenizer=word_tokenizer()
    )
    assert session.windows.shape == (6, SEQ)
    expected = _layer_outputs(model, session.windows)
    for i, layer in enumerate(model.model.layers):
        source = attention_weights(spec, model.config, layer.self_attn)
        calibration = session.layer(i, source)
        assert calibration.tokens == 6 * SEQ
        assert torch.equal(calibration.inputs, calibration.source_inputs)
        out, heads = calibration.run_attention(source)
        assert torch.equal(out, calibration.target)
        assert heads.shape == (6, SEQ, 4, 16)
        # Only the current layer is materialised.
        later = list(session._layers[i + 1].parameters()) if i + 1 < session.num_layers else []
        assert all(p.is_meta for p in later)
        session.advance(i, source)
        assert all(p.is_meta for p in session._layers[i].parameters())
        torch.testing.assert_close(session.converted_hidden_states(), expected[i])
        torch.testing.assert_close(session.source_hidden_states(), expected[i])


def test_converted_stream_carries_the_converted_layers(tmp_path: Path, text: Path) -> None:
    src = save_tiny_model(tmp_path / "m", "llama")
    model = tiny_model("llama")
    spec = get_family("llama")
    session = CalibrationSession(
        src, model.config, [text], tokens=4 * SEQ, seq_len=SEQ, tokenizer=word_tokenizer()
    )
    ids = session.windows
    source0 = attention_weights(spec, model.config, model.model.layers[0].self_attn)
    session.layer(0, source0)
    pooled = mean_pooling(source0, HeadTarget(1)).weights
    session.advance(0, pooled)
    calibration = session.layer(1)
    # Reference: the same model with layer 0 pooled, in memory.
    expected_source = _layer_outputs(model, ids)[0]
    model.model.layers[0].self_attn = build_attention(
        spec, model.model.layers[0].self_attn, model.config, pooled, layer_idx=0
    )
    expected_conv = _layer_outputs(model, ids)[0]
    norm = model.model.layers[1].input_layernorm
    with torch.no_grad():
        torch.testing.assert_close(calibration.inputs, norm(expected_conv))
        torch.testing.assert_close(calibration.source_inputs, norm(expected_source))
    assert not torch.allclose(calibration.inputs, calibration.source_inputs)


def test_layers_must_be_visited_in_order(tmp_path: Path, text: Path) -> None:
    src = save_tiny_model(tmp_path / "m", "llama")
    session = CalibrationSession(
        src,
        tiny_model("llama").config,
        [text],
        tokens=SEQ,
        seq_len=SEQ,
        tokenizer=word_tokenizer(),
    )
    with pytest.raises(ConversionError, match="expects layer 0 next, got layer 1"):
        session.layer(1)
    session.layer(0)
    with pytest.raises(ConversionError, match="expects layer 1 next, got layer 1"):
        session.layer(1)  # layer 0 not advanced yet


def test_windows_are_drawn_from_every_text(tmp_path: Path) -> None:
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text(" ".join(f"w{i}" for i in range(1, 31)))  # 10 windows of 3
    b.write_text(" ".join(f"w{i}" for i in range(40, 70)))  # 10 windows of 3
    windows = calibration_windows(word_tokenizer(), [a, b], tokens=12, seq_len=3)
    assert windows.shape == (4, 3)
    assert [w[0] < 40 for w in windows.tolist()] == [True, True, False, False]  # 2 + 2
    assert (
        windows.tolist()
        == calibration_windows(word_tokenizer(), [a, b], tokens=12, seq_len=3).tolist()
    )
    assert fingerprint(windows) == fingerprint(windows.clone())
    assert fingerprint(windows) != fingerprint(windows + 1)


def test_calibrated_conversion_records_every_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gqa_retrofit import convert_checkpoint

    src = save_tiny_model(tmp_path / "src", "llama")  # character tokenizer, 256 positions
    novels = [random_text(tmp_path / f"novel{k}.txt", 400, seed=k) for k in range(4)]
    monkeypatch.chdir(tmp_path)
    report = convert_checkpoint(
        src,
        tmp_path / "out",
        kv_heads=1,
        method="pca-refit",
        calibration=[n.name for n in novels],
        calibration_tokens=4 * WINDOW,
    )
    calibration = report.manifest["calibration"]
    assert [(s["name"], s["windows"], s["tokens"]) for s in calibration["sources"]] == [
        (f"novel{k}.txt", 1, WINDOW) for k in range(4)
    ]
    assert [f["name"] for f in calibration["files"]] == [f"novel{k}.txt" for k in range(4)]
    assert calibration["requested_tokens"] == 4 * WINDOW and calibration["tokens"] == 4 * WINDOW
    assert str(tmp_path) not in json.dumps(calibration)


def test_too_little_text_is_a_data_error(tmp_path: Path) -> None:
    a = random_text(tmp_path / "a.txt", 50)
    with pytest.raises(DataError, match=r"has 50 tokens, fewer than the 64 requested"):
        calibration_windows(word_tokenizer(), [a], tokens=64, seq_len=32)
    with pytest.raises(DataError, match="does not exist"):
        calibration_windows(word_tokenizer(), [tmp_path / "nope.txt"], tokens=32, seq_len=32)
    with pytest.raises(DataError, match="at least one window"):
        calibration_windows(word_tokenizer(), [a], tokens=16, seq_len=32)
