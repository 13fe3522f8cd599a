"""The report's in-context retrieval section, verdicts and plot, from recorded stage results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from gqa_retrofit.evaluation.retrieval import RetrievalResult
from gqa_retrofit.evaluation.retrieval_copy import CopyProbeResult, CopyTrial
from gqa_retrofit.evaluation.retrieval_passkey import PasskeyCell, PasskeyLength, PasskeyResult
from gqa_retrofit.pipeline.report import (
    _plot_retrieval,
    retrieval_lines,
    retrieval_lost,
    retrieval_verdicts,
)


def _result(rates: dict[int, int], second: float) -> dict[str, Any]:
    """A recorded result: ``rates`` successes of 5 per length, a copy loss ``second``."""
    lengths = [
        PasskeyLength(n, n > 8192, [PasskeyCell(0.5, k, 5)]) for n, k in sorted(rates.items())
    ]
    passkey = PasskeyResult("filler", 0, [0.5], 5, 8192, 1, lengths)
    copy = CopyProbeResult(256, 1, 0, 49149, 1, False, [CopyTrial(13.0, second)])
    return RetrievalResult(passkey=passkey, copy=copy).to_dict()


RESULTS = {
    "probe_zero_shot": {
        "source": _result({1024: 5, 16384: 0}, 2.0),
        "converted": _result({1024: 0, 16384: 0}, 9.5),
    },
    "probe_trained": {"trained": _result({1024: 5, 16384: 0}, 2.4)},
}


def test_section_rows_and_verdicts() -> None:
    lines = retrieval_lines(RESULTS)
    assert lines[0] == "## In-context retrieval"
    assert "| probe | source | converted | trained |" in lines
    assert "| passkey retrieval at 1,024 tokens | 100% | 0% | 100% |" in lines
    assert (
        "| passkey retrieval at 16,384 tokens (beyond the position limit) | 0% | 0% | 0% |" in lines
    )
    assert (
        "| copy probe: loss on the second copy (nats; chance 10.80) | 2.00 | 9.50 | 2.40 |" in lines
    )
    assert "| copy probe: second / first copy | 0.15 | 0.73 | 0.18 |" in lines
    assert (
        "- converted: in-context retrieval LOST: copy-probe loss 9.50 is 4.8x the source's 2.00 "
        "(keep: <= 1.3x); passkey at 1,024 tokens 0% vs the source's 100%" in lines
    )
    assert any(line.startswith("- trained: in-context retrieval kept") for line in lines)
    # the final (trained) model kept it: no warning
    assert retrieval_lost(RESULTS) is None
    assert set(retrieval_verdicts(RESULTS)) == {"converted", "trained"}


def test_lost_by_the_final_model_and_nothing_without_probes(tmp_path: Path) -> None:
    untrained = {"probe_zero_shot": RESULTS["probe_zero_shot"]}
    assert retrieval_lost(untrained) == (
        "in-context retrieval LOST: copy-probe loss 9.50 is 4.8x the source's 2.00 (keep: <= "
        "1.3x); passkey at 1,024 tokens 0% vs the source's 100%"
    )
    assert retrieval_lines({}) == [] and retrieval_lost({}) is None
    assert _plot_retrieval({}, tmp_path / "r.png") is False
    assert _plot_retrieval(RESULTS, tmp_path / "r.png") is True
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
