"""The retrofit pipeline end to end on a tiny llama: stages, outputs, resume, dry run, CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from gqa_retrofit.cli.main import main
from gqa_retrofit.errors import ConfigError, OutputExistsError
from gqa_retrofit.pipeline import retrofit as retrofit_module
from gqa_retrofit.pipeline.retrofit import retrofit
from gqa_retrofit.pipeline.stages import STATE_FILE
from tiny_models import save_tiny_model

TEXT = (
    "It is a truth universally acknowledged, that a single man in possession of a good "
    "fortune, must be in want of a wife. Emma Woodhouse, handsome, clever, and rich, with a "
    "comfortable home and happy disposition, seemed to unite some of the best blessings of "
    "existence. "
)
STAGES = [
    "estimate",
    "convert",
    "eval_zero_shot",
    "probe_zero_shot",
    "train",
    "eval_trained",
    "probe_trained",
    "bench",
    "report",
    "card",
    "push",
]


@pytest.fixture
def setup(tmp_path: Path) -> dict[str, Any]:
    src = save_tiny_model(tmp_path / "src", "llama")
    train = tmp_path / "train.txt"
    train.write_text(TEXT * 6, encoding="utf-8")
    test = tmp_path / "test.txt"
    test.write_text(TEXT[::-1] * 3, encoding="utf-8")
    return {"src": src, "train": train, "test": test, "tmp": tmp_path}


def small_run(s: dict[str, Any], out: Path, **extra: Any) -> retrofit_module.RetrofitResult:
    return retrofit(
        str(s["src"]),
        out,
        kv_heads=1,
        train_data=[str(s["train"])],  # also the calibration text (announced)
        calibration_tokens=512,
        train_steps=3,
        eval_data=str(s["test"]),
        eval_windows=2,
        eval_seq_len=32,
        bench_contexts=[16],
        bench_new_tokens=2,
        bench_repeats=1,
        train={"seq_len": 32, "batch_size": 2, "warmup": 0, "save_every": 2},
        **extra,
    )


def state_of(out: Path) -> dict[str, Any]:
    return json.loads((out / STATE_FILE).read_text(encoding="utf-8"))


def test_end_to_end_outputs(setup: dict[str, Any], hub_server: object) -> None:
    from huggingface_hub import HfApi

    out = setup["tmp"] / "run"
    result = small_run(setup, out, push="tester/src-kv1", probes="copy")
    state = state_of(out)
    assert state["order"] == STAGES
    assert [state["stages"][n]["status"] for n in STAGES] == ["done"] * 11
    assert result.final_model == out / "src-kv1"
    assert result.converted == out / "src-kv1-converted"

    estimate = result.results["estimate"]
    assert estimate["kv_cache_bytes_per_token"] == {
        "source": 2 * 2 * 2 * 16 * 2,
        "target": 2 * 2 * 1 * 16 * 2,
    }
    converted = json.loads((out / "src-kv1-converted" / "config.json").read_text())
    trained = json.loads((out / "src-kv1" / "config.json").read_text())
    assert converted["num_key_value_heads"] == trained["num_key_value_heads"] == 1
    assert not (out / "src-kv1" / "checkpoints").exists()

    zero = result.results["eval_zero_shot"]
    assert set(zero) == {"source", "converted"}
    assert zero["source"]["windows"] == 2 and zero["source"]["seq_len"] == 32
    assert result.results["eval_trained"]["trained"]["perplexity"] > 1

    bench = result.results["bench"]["results"]
    assert [row["model"] for row in bench] == ["source", "retrofit"]
    # 1 KV head caches exactly half of 2, and the measurement equals the prediction
    assert bench[0]["kv_cache_bytes"] == 2 * bench[1]["kv_cache_bytes"]
    assert all(row["kv_cache_bytes"] == row["predicted_kv_cache_bytes"] for row in bench)

    probes = {**result.results["probe_zero_shot"], **result.results["probe_trained"]}
    assert set(probes) == {"source", "converted", "trained"}
    assert all(p["copy"]["span_length"] == 256 and p["passkey"] is None for p in probes.values())
    manifest = json.loads((out / "src-kv1" / "gqa_retrofit.json").read_text())
    copy_records = [e for e in manifest["evaluations"] if e["metric"] == "copy_second_copy_loss"]
    assert [e["model"] for e in copy_records] == ["source", "converted", "trained"]

    report = (out / "report.md").read_text(encoding="utf-8")
    assert "## In-context retrieval" in report and (out / "report" / "retrieval.png").is_file()
    assert "| KV cache per token (bf16) | 256 B | 128 B |" in report
    assert f"{zero['source']['perplexity']:,.2f}" in report
    for png in ("cost_curves", "before_after", "training_curve"):
        assert (out / "report" / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert (out / "src-kv1" / "report" / f"{png}.png").is_file()
    # the copy next to the model is the same report, its paths relative to where it lives
    copy = (out / "src-kv1" / "retrofit_report.md").read_text(encoding="utf-8")
    assert report.startswith("# Retrofit report: ../src\n")
    assert len(copy.splitlines()) == len(report.splitlines())
    assert copy.startswith("# Retrofit report: ../../src\n") and str(setup["tmp"]) not in copy
    assert "gqa-retrofit retrofit" in report

    card = (out / "src-kv1" / "README.md").read_text(encoding="utf-8")
    assert "[retrofit_report.md](retrofit_report.md)" in card
    manifest = json.loads((out / "src-kv1" / "gqa_retrofit.json").read_text())
    assert {e["model"] for e in manifest["evaluations"]} == {"source", "converted", "trained"}
    events = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [e["stage"] for e in events if e["event"] == "done"] == STAGES

    # the push uploaded the final model with its card and report, without training checkpoints
    url = result.results["push"]["url"]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/tester/src-kv1")
    files = set(HfApi().list_repo_files("tester/src-kv1"))
    assert {
        "README.md",
        "retrofit_report.md",
        "report/cost_curves.png",
        "model.safetensors",
        "config.json",
        "gqa_retrofit.json",
    } <= files
    assert not any(name.startswith("checkpoints/") for name in files)


def test_resume_after_failure_between_stages(
    setup: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    out = setup["tmp"] / "run"
    calls: list[str] = []
    real_convert = retrofit_module.RetrofitPipeline.run_convert
    real_bench = retrofit_module.RetrofitPipeline.run_bench

    def counting_convert(self: Any, ctx: Any) -> dict[str, Any]:
        calls.append("convert")
        return real_convert(self, ctx)

    def crashing_bench(self: Any, ctx: Any) -> dict[str, Any]:
        raise RuntimeError("power cut during bench")

    monkeypatch.setattr(retrofit_module.RetrofitPipeline, "run_convert", counting_convert)
    monkeypatch.setattr(retrofit_module.RetrofitPipeline, "run_bench", crashing_bench)
    with pytest.raises(RuntimeError, match="power cut"):
        small_run(setup, out)
    state = state_of(out)
    assert state["stages"]["train"]["status"] == "done"
    assert state["stages"]["bench"]["status"] == "failed"
    assert "report" not in state["stages"]
    weights = (out / "src-kv1" / "model.safetensors").read_bytes()

    monkeypatch.setattr(retrofit_module.RetrofitPipeline, "run_bench", real_bench)
    result = small_run(setup, out)
    assert calls == ["convert"]  # not converted again
    assert (out / "src-kv1" / "model.safetensors").read_bytes() == weights
    assert state_of(out)["stages"]["card"]["status"] == "done"
    assert result.results["bench"]["results"][1]["model"] == "retrofit"

    with pytest.raises(OutputExistsError, match=r"different options \(.*kv_heads"):
        retrofit(str(setup["src"]), out, kv_heads=2, method="mean")


def test_dry_run_plan(setup: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    out = setup["tmp"] / "plan"
    code = main(
        [
            "-q",
            "retrofit",
            str(setup["src"]),
            str(out),
            "--kv-heads",
            "1",
            "--train-data",
            str(setup["train"]),
            "--train-steps",
            "10",
            "--dry-run",
        ]
    )
    assert code == 0
    assert not out.exists()
    text = capsys.readouterr().out
    lines = text.splitlines()
    assert lines[0] == f"plan for {out}:"
    assert lines[2].split()[:3] == ["1", "estimate", "pending"]
    assert "eval_zero_shot   skipped" in text and "no --eval-data given" in text
    assert " train            pending" in text
    assert "push             skipped" in text
    assert "total pending: about" in text

    code = main(
        [
            "retrofit",
            str(setup["src"]),
            str(out),
            "--kv-heads",
            "1",
            "--method",
            "mean",
            "--dry-run",
            "--json",
            "-q",
        ]
    )
    plan = json.loads(capsys.readouterr().out)["plan"]
    assert [row["stage"] for row in plan] == STAGES
    train = next(row for row in plan if row["stage"] == "train")
    assert train["status"] == "skipped"
    convert = next(row for row in plan if row["stage"] == "convert")
    assert convert["estimated_seconds"] >= 0 and convert["estimated_memory_bytes"] > 0


def test_bad_options_exit_2_and_write_nothing(
    setup: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    out = setup["tmp"] / "bad"
    assert main(["-q", "retrofit", str(setup["src"]), str(out)]) == 2
    assert "no --kv-heads given" in capsys.readouterr().err
    assert (
        main(
            [
                "-q",
                "retrofit",
                str(setup["src"]),
                str(out),
                "--kv-heads",
                "1",
                "--eval-data",
                str(setup["tmp"] / "nope.txt"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nope.txt" in err and "does not exist" in err
    inside = setup["src"] / "out"
    assert main(["-q", "retrofit", str(setup["src"]), str(inside), "--kv-heads", "1"]) == 2
    assert "overlaps the source" in capsys.readouterr().err
    assert not out.exists() and not inside.exists()
    with pytest.raises(ConfigError, match="unknown retrofit option 'kv_head'"):
        config = setup["tmp"] / "c.yaml"
        config.write_text("kv_head: 1\n", encoding="utf-8")
        retrofit(str(setup["src"]), out, config=config)


def test_config_file_merges_with_arguments(setup: dict[str, Any]) -> None:
    config = setup["tmp"] / "retrofit.yaml"
    config.write_text(
        f"kv_heads: 1\ntrain_data: {setup['train']}\ntrain_steps: 4\n"
        "train:\n  lr: 0.001\n  seq_len: 32\n",
        encoding="utf-8",
    )
    result = retrofit(
        str(setup["src"]), setup["tmp"] / "o", config=config, train_steps=7, dry_run=True
    )
    options = retrofit_module.build_options(
        str(setup["src"]), str(setup["tmp"] / "o"), config=config, train_steps=7
    )
    assert options.train_steps == 7 and options.kv_heads == 1
    assert options.train == {"lr": 0.001, "seq_len": 32}
    assert options.train_data == [str(setup["train"])]
    assert [r["status"] for r in result.plan][4] == "pending"  # train
