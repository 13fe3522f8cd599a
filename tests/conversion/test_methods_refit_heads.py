"""o_proj refit and query-head selection on a tiny real model with calibration data."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.arch import get_family
from gqa_retrofit.conversion.calibration import CalibrationSession, attention_weights
from gqa_retrofit.conversion.methods import DEFAULT_METHOD, convert_attention, select_query_heads
from gqa_retrofit.conversion.methods.refit import refit_output
from gqa_retrofit.conversion.pooling import HeadTarget, get_pooling, mean_pooling
from gqa_retrofit.errors import ConfigError
from tests.conversion._calib import random_text, word_tokenizer
from tiny_models import save_tiny_model, tiny_model

SEQ = 32


@pytest.fixture(scope="module")
def layer0(tmp_path_factory: pytest.TempPathFactory):
    """Calibration of layer 0 of a tiny llama (4 query heads, 2 KV heads) and its weights."""
    root = tmp_path_factory.mktemp("refit")
    text = random_text(root / "calib.txt", 1000)
    src = save_tiny_model(root / "m", "llama")
    model = tiny_model("llama")
    session = CalibrationSession(
        src, model.config, [text], tokens=8 * SEQ, seq_len=SEQ, tokenizer=word_tokenizer()
    )
    source = attention_weights(get_family("llama"), model.config, model.model.layers[0].self_attn)
    return source, session.layer(0, source)


def _error(calibration, weights) -> float:
    out, _ = calibration.run_attention(weights)
    return float((out - calibration.target).pow(2).sum() / calibration.target.pow(2).sum())


def test_refit_reduces_the_output_error_it_reports(layer0) -> None:
    source, calibration = layer0
    pooled = mean_pooling(source, HeadTarget(1)).weights
    refit, record = refit_output(pooled, calibration)
    before, after = _error(calibration, pooled), _error(calibration, refit)
    assert record["relative_error_before"] == pytest.approx(before, rel=1e-4)
    assert record["relative_error_after"] == pytest.approx(after, rel=1e-3, abs=1e-6)
    assert after < 0.8 * before
    assert torch.equal(refit.k, pooled.k) and torch.equal(refit.q, pooled.q)


def test_refit_of_the_exact_weights_keeps_them(layer0) -> None:
    source, calibration = layer0
    refit, record = refit_output(source, calibration)
    torch.testing.assert_close(refit.o, source.o, atol=1e-5, rtol=1e-4)
    assert record["relative_error_before"] == 0.0


def test_importance_keeps_the_heads_that_matter(layer0) -> None:
    """Head 0 is made useless (o columns zeroed, o fixed): importance drops it, index keeps it."""
    source, calibration = layer0
    o = source.o.clone()
    o[:, 0] = 0
    crippled = source.replace(o=o)
    by_index, rec_index = select_query_heads(crippled, 2, calibration, by="index", refit=False)
    by_importance, rec = select_query_heads(crippled, 2, calibration, by="importance", refit=False)
    assert rec_index["kept_heads"] == [0, 2]
    assert rec["kept_heads"][0] == 1 and rec["removed_in_order"][0] == 0
    assert by_importance.q.shape == (2, 16, 64) and by_importance.o.shape == (64, 2, 16)
    # Each KV head keeps one query head.
    assert rec["kept_heads"][1] in (2, 3)
    assert _error(calibration, by_importance) < _error(calibration, by_index)


@pytest.mark.parametrize("refit", [True, False])
def test_importance_beats_index_after_conversion(layer0, refit: bool) -> None:
    source, calibration = layer0
    target = HeadTarget(kv_heads=1, heads=2)
    errors = {
        by: _error(
            calibration,
            convert_attention(
                source, target, calibration, kv="pca", refit=refit, heads_by=by
            ).weights,
        )
        for by in ("index", "importance")
    }
    assert errors["importance"] <= errors["index"]


def test_registered_methods_need_calibration(layer0) -> None:
    source, _ = layer0
    assert DEFAULT_METHOD == "pca-refit"
    for name in ("align-mean", "pca", "mean-refit", "pca-refit"):
        method = get_pooling(name)
        assert method.needs_calibration and method.reference and method.summary
        with pytest.raises(ConfigError, match="needs calibration text"):
            method.fn(source, HeadTarget(1), None)
        # Same geometry needs no data and is the identity.
        same = method.fn(source, HeadTarget(2), None).weights
        assert torch.equal(same.k, source.k) and torch.equal(same.o, source.o)
    with pytest.raises(ConfigError, match="heads=8 exceeds the source's 4 query heads"):
        get_pooling("pca-refit").fn(source, HeadTarget(2, heads=8), None)
    with pytest.raises(ConfigError, match="kv_heads=3 must divide heads=4"):
        get_pooling("pca").fn(source, HeadTarget(3), None)


def test_record_is_json(layer0) -> None:
    import json

    source, calibration = layer0
    result = get_pooling("pca-refit").fn(source, HeadTarget(1, heads=2), calibration)
    record = json.loads(json.dumps(result.record))
    assert record["groups"] == [[0, 1]]
    assert len(record["query_heads"]["kept_heads"]) == 2
    assert record["refit"]["relative_error_after"] <= record["refit"]["relative_error_before"]
