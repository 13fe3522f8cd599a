"""The retrieval facade: options validation, probe selection, JSON round trip, the plot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gqa_retrofit.errors import ConfigError, DataError
from gqa_retrofit.evaluation.retrieval import (
    PROBES,
    RetrievalOptions,
    RetrievalResult,
    evaluate_retrieval,
    parse_probes,
    plot_retrieval,
)
from tiny_models import tiny_model, tiny_tokenizer

TEXT = "It is a truth universally acknowledged, that a single man in possession of a good fortune. "


@pytest.fixture
def text_file(tmp_path: Path) -> Path:
    path = tmp_path / "book.txt"
    path.write_text(TEXT * 12, encoding="utf-8")  # 1,092 tokens
    return path


def _options(text: Path, **changes: object) -> RetrievalOptions:
    values: dict[str, object] = dict(
        probes=PROBES,
        passkey_lengths=(300, 400),
        passkey_depths=(0.0, 1.0),
        passkey_trials=1,
        copy_span=16,
        copy_trials=2,
        long_data=str(text),
        long_seq_len=128,
        long_windows=2,
    )
    values.update(changes)
    return RetrievalOptions(**values)  # type: ignore[arg-type]


def test_all_probes_run_and_round_trip_through_json(text_file: Path, tmp_path: Path) -> None:
    model = tiny_model("llama", max_position_embeddings=512)
    result = evaluate_retrieval(model, tiny_tokenizer(), _options(text_file))
    assert result.passkey is not None and result.copy is not None and result.long_window
    assert set(result.seconds) == {"passkey", "copy", "long-ppl"}
    data = json.loads(json.dumps(result.to_dict()))
    assert list(data["summary"]["passkey_success"]) == ["300", "400"]
    assert data["summary"] == {
        "passkey_success": {str(n): rate for n, rate in result.passkey.success_rates().items()},
        "copy_second_copy_loss": result.copy.second_copy_loss,
        "copy_relative_loss": result.copy.relative_loss,
        "long_window_perplexity": result.long_window.perplexity,
    }
    back = RetrievalResult.from_dict(data)
    assert back.to_dict() == result.to_dict()
    png = plot_retrieval({"a": result, "b": back}, tmp_path / "probes.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_only_the_asked_probes_run(text_file: Path) -> None:
    model = tiny_model("llama")
    result = evaluate_retrieval(model, tiny_tokenizer(), _options(text_file, probes=("copy",)))
    assert result.passkey is None and result.long_window is None and result.copy is not None
    assert list(result.summary()) == ["copy_second_copy_loss", "copy_relative_loss"]


def test_model_path_is_loaded(tiny_llama_dir: Path, text_file: Path) -> None:
    result = evaluate_retrieval(str(tiny_llama_dir), options=_options(text_file, probes=("copy",)))
    assert result.copy is not None and result.copy.candidates == 97


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"probes": ()}, r"^no retrieval probes asked for; valid: passkey, copy, long-ppl$"),
        ({"probes": ("needle",)}, r"^unknown retrieval probe 'needle'; valid: passkey, copy"),
        ({"passkey_trials": 0}, r"^passkey trials must be at least 1, got 0$"),
        ({"passkey_depths": (2.0,)}, r"^passkey depth 2.0 is outside \[0, 1\]$"),
        ({"copy_trials": 0}, r"^copy-probe trials must be at least 1, got 0$"),
        ({"long_windows": 0}, r"^long-window count must be at least 1, got 0$"),
        ({"long_data": None}, r"^the long-ppl probe needs a text file"),
    ],
)
def test_bad_options(text_file: Path, changes: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _options(text_file, **changes)


def test_text_inputs_are_checked_before_any_probe_runs(
    text_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gqa_retrofit.evaluation import retrieval

    def fail(*_: object, **__: object) -> None:
        raise AssertionError("a probe ran before the inputs were checked")

    monkeypatch.setattr(retrieval, "passkey_retrieval", fail)
    model = tiny_model("llama", max_position_embeddings=2048)
    short = _options(text_file, haystack=str(text_file), passkey_lengths=(600, 2000))
    with pytest.raises(DataError, match=r"fewer than the longest passkey length 2000"):
        evaluate_retrieval(model, tiny_tokenizer(), short)
    too_long = _options(text_file, long_seq_len=1024, long_windows=2)
    with pytest.raises(DataError, match=r"fewer than 2 window\(s\) of 1023 text tokens"):
        evaluate_retrieval(model, tiny_tokenizer(), too_long)


def test_parse_probes() -> None:
    assert parse_probes("passkey, copy") == ("passkey", "copy")
    assert parse_probes("all") == PROBES
    assert parse_probes(["copy", "copy"]) == ("copy",)
    with pytest.raises(ConfigError, match=r"^unknown retrieval probe 'x'; valid: .*, all$"):
        parse_probes("copy,x")


def test_options_round_trip() -> None:
    options = RetrievalOptions(passkey_lengths=(1024, 2048), passkey_depths=(0.5,))
    assert RetrievalOptions.from_dict(json.loads(json.dumps(options.to_dict()))) == options
    with pytest.raises(ConfigError, match=r"^unknown retrieval option 'depth'"):
        RetrievalOptions.from_dict({"depth": 0.5})
