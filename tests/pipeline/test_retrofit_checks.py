"""retrofit checks everything before the first stage and never decides silently (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gqa_retrofit.cli.main import main
from gqa_retrofit.pipeline import retrofit as retrofit_module
from gqa_retrofit.pipeline.options import RetrofitOptions
from gqa_retrofit.pipeline.retrofit import retrofit
from gqa_retrofit.pipeline.stages import STATE_FILE
from tiny_models import save_tiny_model

TEXT = "It is a truth universally acknowledged, that a single man must be in want of a wife. "


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Path]:
    src = save_tiny_model(tmp_path / "src", "llama")
    train = tmp_path / "train.txt"
    train.write_text(TEXT * 20, encoding="utf-8")
    return {"src": src, "train": train, "tmp": tmp_path}


def _refused(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    code = main(["-q", "retrofit", *argv])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1, err
    return err.strip()


def test_the_old_headline_is_refused_before_anything_runs(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    out = setup["tmp"] / "run"
    base = [str(setup["src"]), str(out), "--kv-heads", "1"]
    err = _refused(capsys, [*base, "--train-steps", "200", "--push", "me/x"])
    assert err == (
        "gqa-retrofit retrofit: error: --train-steps 200 given but no --train-data: pass the "
        "training data (files, globs or a Hub dataset); nothing is trained without it"
    )
    err = _refused(capsys, base)  # no data at all: it would mean-pool silently
    assert "no data for the conversion: pass --calibration TEXT" in err
    assert "or --method mean to mean-pool without data" in err
    err = _refused(capsys, [*base, "--method", "mean", "--push", "me/x"])
    assert err == (
        "gqa-retrofit retrofit: error: --push me/x would publish a model that is not trained "
        "(no --train-data) and mean-pooled (--method mean): train it (--train-data, "
        "--train-steps) or pass --push-untrained to publish it anyway"
    )
    err = _refused(capsys, [*base, "--calibration", str(setup["train"]), "--push", "me/x"])
    assert "would publish a model that is not trained (no --train-data):" in err
    assert not out.exists()


def test_push_without_a_token_is_refused_first(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN", raising=False)
    out = setup["tmp"] / "run"
    argv = [str(setup["src"]), str(out), "--kv-heads", "1", "--train-data", str(setup["train"])]
    err = _refused(capsys, [*argv, "--train-steps", "2", "--push", "me/x"])
    assert err == (
        "gqa-retrofit retrofit: error: --push me/x needs a Hub token: set HF_TOKEN or run "
        "`hf auth login` (nothing was run)"
    )
    assert "--token" not in err  # retrofit has no such flag
    assert not out.exists()


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--kv-heads", "3"],
         "--kv-heads 3 is invalid for {src!r} (2 KV heads): choose one of 1, 2"),
        (["--kv-heads", "1", "--heads", "8"],
         "--heads 8 is invalid for {src!r}: it has 4 query heads; choose at most 4"),
        (["--kv-heads", "1", "--method", "nope"], "unknown pooling method 'nope'"),
        (["--kv-heads", "1", "--config", "{bad}"], "unknown training option 'lrr'"),
        (["--kv-heads", "1", "--eval-data", "{train}", "--eval-seq-len", "999"],
         "--eval-seq-len 999 is beyond the position limit of {src!r} (256 tokens)"),
    ],
)  # fmt: skip
def test_bad_options_are_found_before_the_first_stage(
    setup: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    extra: list[str],
    message: str,
) -> None:
    bad = setup["tmp"] / "bad.yaml"
    bad.write_text("train: {lrr: 0.1}\n", encoding="utf-8")
    fill = {"src": str(setup["src"]), "train": str(setup["train"]), "bad": str(bad)}
    out = setup["tmp"] / "run"
    argv = [str(setup["src"]), str(out), "--train-data", str(setup["train"]), "--train-steps", "2"]
    err = _refused(capsys, [*argv, *[e.format(**fill) for e in extra]])
    assert message.format(**fill) in err
    assert not out.exists()


def test_failed_options_are_not_kept(
    setup: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = setup["tmp"] / "run"

    def broken(self: Any, ctx: Any) -> dict[str, Any]:
        raise RuntimeError("estimate crashed")

    monkeypatch.setattr(retrofit_module.RetrofitPipeline, "run_estimate", broken)
    options = RetrofitOptions(src=str(setup["src"]), out=str(out), kv_heads=1, method="mean")
    with pytest.raises(RuntimeError, match="estimate crashed"):
        retrofit(options)
    state = json.loads((out / STATE_FILE).read_text(encoding="utf-8"))
    assert state["stages"]["estimate"]["status"] == "failed"
    monkeypatch.undo()
    corrected = RetrofitOptions(
        src=str(setup["src"]),
        out=str(out),
        kv_heads=2,
        method="mean",
        bench_contexts=[16],
        bench_repeats=1,
        bench_new_tokens=2,
        dry_run=True,
    )
    assert retrofit(corrected).plan[0]["status"] == "pending"  # accepted, nothing was done
    result = retrofit(RetrofitOptions.from_dict({**corrected.to_dict(), "dry_run": False}))
    assert json.loads((result.final_model / "config.json").read_text())["num_key_value_heads"] == 2


def test_calibration_defaults_to_the_training_data_loudly(
    setup: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    options = RetrofitOptions(
        src=str(setup["src"]),
        out=str(setup["tmp"] / "run"),
        kv_heads=1,
        train_data=[str(setup["train"])],
        train_steps=1,
        dry_run=True,
    )
    retrofit(options)
    assert capsys.readouterr().err == (
        "gqa-retrofit: note: no --calibration given: the conversion calibrates on the "
        f"--train-data ({setup['train']}); recorded in the run's options, report and manifest\n"
    )
    resolved = retrofit_module.preflight(options)
    assert resolved.calibration == [str(setup["train"])] and options.calibration == []


def test_keyword_form_forwards_to_the_options(setup: dict[str, Path]) -> None:
    out = setup["tmp"] / "kw"
    by_keywords = retrofit(str(setup["src"]), out, kv_heads=1, method="mean", dry_run=True)
    by_options = retrofit(
        RetrofitOptions(
            src=str(setup["src"]), out=str(out), kv_heads=1, method="mean", dry_run=True
        )
    )
    assert by_keywords.plan == by_options.plan
