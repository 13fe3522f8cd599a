"""Report pieces: training curve parsing, perplexity collection, command line, table rows."""

from __future__ import annotations

import json
from pathlib import Path

from gqa_retrofit.cli.retrofit import summary_lines
from gqa_retrofit.pipeline.options import RetrofitOptions
from gqa_retrofit.pipeline.report import (
    perplexities,
    render_report,
    reproduce_command,
    training_curve,
)

BENCH = [
    {
        "model": "source",
        "context": 2048,
        "repeats": 5,
        "dtype": "fp32",
        "new_tokens": 64,
        "decode_tokens_per_second": 20.0,
        "kv_cache_bytes": 3000,
    },
    {
        "model": "retrofit",
        "context": 2048,
        "repeats": 5,
        "dtype": "fp32",
        "new_tokens": 64,
        "decode_tokens_per_second": 25.0,
        "kv_cache_bytes": 1000,
    },
]
RESULTS = {
    "eval_zero_shot": {"source": {"perplexity": 36.6}, "converted": {"perplexity": 139.0}},
    "eval_trained": {"trained": {"perplexity": 50.25}},
    "bench": {"results": BENCH},
    "convert": {"report": {"method": "mean"}},
}
CURVE = {
    "contexts": [8192, 131072],
    "kv_cache_bytes": [300, 4000],
    "decode_flops": [1.0, 2.0],
    "memory_bytes": [1, 2],
    "kv_cache_bytes_per_token": 23040,
    "params": 134515008,
}


def test_training_curve_reads_steps_and_skips_other_lines(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        "\n".join(
            [
                json.dumps({"step": 1, "loss": 3.5, "lr": 1e-4}),
                "not json",
                json.dumps({"step": 2, "eval_loss": 3.0}),  # no training loss: skipped
                json.dumps({"step": 2, "loss": 3.25, "eval_loss": 3.1}),
            ]
        ),
        encoding="utf-8",
    )
    assert training_curve(path) == [
        {"step": 1.0, "loss": 3.5},
        {"step": 2.0, "loss": 3.25, "eval_loss": 3.1},
    ]
    assert training_curve(tmp_path / "missing.jsonl") == []


def test_perplexities_and_summary() -> None:
    assert perplexities(RESULTS) == {"source": 36.6, "converted": 139.0, "trained": 50.25}
    text = summary_lines(RESULTS, "OUT", "OUT/m-kv1")
    assert text.splitlines() == [
        "retrofit finished: OUT/m-kv1",
        "perplexity: source 36.60, converted 139.00, trained 50.25",
        "source    context   2048: KV cache 3,000 B, decode 20.00 tokens/s",
        "retrofit  context   2048: KV cache 1,000 B, decode 25.00 tokens/s",
        "report: OUT/report.md",
    ]


def test_report_rows(tmp_path: Path) -> None:
    options = RetrofitOptions(
        src="models/m",
        out=str(tmp_path),
        kv_heads=1,
        train_data=["a.txt"],
        train_steps=80,
        eval_data="texts/persuasion.txt",
        eval_windows=16,
        eval_seq_len=512,
    )
    target = dict(
        CURVE, kv_cache_bytes=[100, 1333], kv_cache_bytes_per_token=7680, params=134000000
    )
    text = render_report(
        options, RESULTS, CURVE, target, perplexities(RESULTS), BENCH, [], tmp_path
    )
    assert text.startswith("# Retrofit report: models/m\n")
    assert "with method `mean`, then trained on a.txt (80 steps, teacher: source)." in text
    assert "| KV cache per token (bf16) | 23,040 B | 7,680 B |" in text
    assert "| perplexity (persuasion.txt, 16x512) | 36.60 | 50.25 |" in text
    assert "| perplexity right after conversion | | 139.00 |" in text
    assert "| decode tokens/s at 2,048 (median of 5, fp32) | 20.00 | 25.00 (1.25x) |" in text
    assert "| measured KV cache at 2,112 tokens (fp32) | 3,000 B | 1,000 B |" in text
    assert "## Training" not in text  # no curve given


def test_reproduce_command() -> None:
    options = RetrofitOptions(
        src="s",
        out="o",
        kv_heads=2,
        heads=8,
        method="mean",
        calibration=["c.txt"],
        train_tokens=1000,
        teacher="none",
        push="me/m",
    )
    assert reproduce_command(options) == (
        "gqa-retrofit retrofit s o --kv-heads 2 --heads 8 --method mean --calibration c.txt "
        "--train-tokens 1000 --teacher none --push me/m"
    )


def test_reproduce_command_parses_back_to_the_same_options() -> None:
    import shlex

    from gqa_retrofit.cli.main import build_parser
    from gqa_retrofit.data.options import DataOptions

    options = RetrofitOptions(
        src="s",
        out="o dir",
        kv_heads=1,
        train_data=["a.txt", "b.jsonl"],
        train_steps=5,
        bench_contexts=[64, 2048],
        data_options=DataOptions(text_column="body"),
        private=True,
        dtype="bf16",
    )
    argv = shlex.split(reproduce_command(options))
    assert argv[:2] == ["gqa-retrofit", "retrofit"]
    assert RetrofitOptions.from_args(build_parser().parse_args(argv[1:])) == options
