"""The demo's passkey ladder and copy-probe table, from recorded summaries."""

from __future__ import annotations

from gqa_retrofit.pipeline.demo import DemoSummary, format_summary, retrieval_table

RETRIEVAL = {
    "original": {
        "passkey_success": {"1024": 1.0, "2048": 1.0, "4096": 1.0, "8192": 0.5},
        "copy_second_copy_loss": 2.11,
    },
    "converted": {
        "passkey_success": {"1024": 0.0, "2048": 0.0, "4096": 0.0, "8192": 0.0},
        "copy_second_copy_loss": 13.99,
    },
    "trained": {"passkey_success": {"1024": 0.5}},
}


def test_table_rows() -> None:
    assert retrieval_table({}) == []
    lines = retrieval_table(RETRIEVAL)
    assert lines[2] == "            " + "     1K     2K     4K     8K    copy"
    assert lines[3] == "  original     100%   100%   100%    50%    2.11"
    assert lines[4] == "  converted      0%     0%     0%     0%   13.99"
    assert lines[5] == "  trained       50%"


def test_summary_prints_the_table_and_the_verdict() -> None:
    summary = DemoSummary(
        out="o",
        final_model="o/m",
        report="o/report.md",
        card="o/m/README.md",
        perplexity={},
        kv_bytes_per_token={"original": 3, "retrofit": 1},
        kv_bytes={"original": {"8K": 3, "128K": 3}, "retrofit": {"8K": 1, "128K": 1}},
        decode_tokens_per_second={},
        bench_context=0,
        continuations={},
        prompt="p",
        retrieval=RETRIEVAL,
        retrieval_verdict="in-context retrieval LOST: x",
    )
    text = format_summary(summary)
    assert "  original     100%   100%   100%    50%    2.11\n" in text
    assert "\n  in-context retrieval LOST: x\n" in text
