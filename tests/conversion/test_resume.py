"""A calibrated conversion interrupted after layer k continues at layer k, and shows its layers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from gqa_retrofit import convert_checkpoint
from gqa_retrofit.conversion import convert as convert_module
from gqa_retrofit.conversion import resume as resume_module
from gqa_retrofit.conversion.calibration import CalibrationSession
from gqa_retrofit.conversion.resume import describe_errors, layer_error, resume_dir
from gqa_retrofit.errors import ConfigError
from tests.conversion._calib import random_text
from tiny_models import save_tiny_model

TOKENS = 1024


@pytest.fixture
def src(tmp_path: Path) -> Path:
    return save_tiny_model(tmp_path / "src", "llama", num_hidden_layers=4, max_shard_size="40KB")


@pytest.fixture
def text(tmp_path: Path) -> Path:
    return random_text(tmp_path / "calib.txt", 2000)


def _convert(src: Path, out: Path, text: Path, method: str = "pca-refit"):
    return convert_checkpoint(
        src,
        out,
        kv_heads=1,
        method=method,
        calibration=text,
        calibration_tokens=TOKENS,
        device="cpu",
    )


def _weights(out: Path) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {}
    for shard in sorted(out.glob("*.safetensors")):
        tensors.update(load_file(str(shard)))
    return tensors


def _interrupt_at(monkeypatch: pytest.MonkeyPatch, layer: int) -> None:
    """Make the pooling method stop the run (as Ctrl-C would) when it reaches ``layer``."""
    real = convert_module.get_pooling

    def get_pooling(name: str):
        method = real(name)

        def fn(weights, target, calibration):
            if calibration is not None and calibration.index == layer:
                raise KeyboardInterrupt
            return method.fn(weights, target, calibration)

        return dataclasses.replace(method, fn=fn)

    monkeypatch.setattr(convert_module, "get_pooling", get_pooling)


def test_interrupted_conversion_resumes_at_the_layer_it_reached(
    src: Path, text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    reference = _weights(_convert(src, tmp_path / "clean", text).output)
    monkeypatch.setattr(resume_module, "STREAMS_EVERY_SECONDS", 0.0)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 2)
        with pytest.raises(KeyboardInterrupt):
            _convert(src, tmp_path / "out", text)
    assert not (tmp_path / "out").exists()
    state = resume_dir(tmp_path / "out")
    assert sorted(p.name for p in state.glob("layer-*")) == [
        "layer-00000.safetensors",
        "layer-00001.safetensors",
    ]
    visited: list[int] = []
    real_layer = CalibrationSession.layer

    def layer(self, i, source_weights=None):
        visited.append(i)
        return real_layer(self, i, source_weights)

    monkeypatch.setattr(CalibrationSession, "layer", layer)
    capsys.readouterr()
    report = _convert(src, tmp_path / "out", text)
    assert "resuming the calibrated conversion at layer 2" in capsys.readouterr().err
    assert visited == [2, 3]  # layers 0 and 1 were not calibrated again
    resumed = _weights(report.output)
    assert resumed.keys() == reference.keys()
    for name, tensor in reference.items():
        assert torch.equal(resumed[name], tensor), name
    assert [r["layer"] for r in report.manifest["layers"]] == [0, 1, 2, 3]
    assert not state.exists()  # removed once complete


def test_other_settings_start_afresh(
    src: Path, text: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setattr(resume_module, "STREAMS_EVERY_SECONDS", 0.0)
    with monkeypatch.context() as patch:
        _interrupt_at(patch, 3)
        with pytest.raises(KeyboardInterrupt):
            _convert(src, tmp_path / "out", text)
    capsys.readouterr()
    _convert(src, tmp_path / "out", text, method="mean-refit")
    assert "resuming" not in capsys.readouterr().err
    assert not resume_dir(tmp_path / "out").exists()


def test_layers_and_their_errors_are_shown(src: Path, text: Path, tmp_path: Path, capsys) -> None:
    report = _convert(src, tmp_path / "out", text)
    errors = {r["layer"]: layer_error(r) for r in report.manifest["layers"]}
    assert all(isinstance(e, float) and 0 <= e < 1 for e in errors.values())
    err = capsys.readouterr().err
    assert describe_errors(errors) in err  # the summary line, from the manifest's records
    assert "layers" in err and "4/4" in err  # the per-layer bar reached the last layer


def test_unavailable_calibration_device(src: Path, text: Path, tmp_path: Path) -> None:
    if torch.cuda.is_available():
        pytest.skip("checks the CPU-only refusal")
    with pytest.raises(ConfigError, match=r"^device 'cuda' is not available"):
        convert_checkpoint(
            src,
            tmp_path / "out",
            kv_heads=1,
            calibration=text,
            calibration_tokens=TOKENS,
            device="cuda",
        )
    assert not (tmp_path / "out").exists()
