"""The kept/lost rule of in-context retrieval (issue 14's targets)."""

from __future__ import annotations

from gqa_retrofit.evaluation.retrieval_verdict import judge_retrieval

SOURCE = {
    "passkey_success": {"1024": 1.0, "2048": 1.0, "8192": 0.8},
    "copy_second_copy_loss": 2.0,
}


def test_kept_at_the_thresholds() -> None:
    model = {
        "passkey_success": {"1024": 0.9, "2048": 1.0, "8192": 0.8 * 0.9},
        "copy_second_copy_loss": 2.6,  # exactly 1.3x
    }
    verdict = judge_retrieval(SOURCE, model)
    assert verdict.kept is True and verdict.reasons == []
    assert verdict.copy_loss_ratio == 1.3
    assert verdict.sentence().startswith("in-context retrieval kept")


def test_lost_names_every_failed_check() -> None:
    model = {"passkey_success": {"1024": 0.0, "2048": 1.0}, "copy_second_copy_loss": 9.0}
    verdict = judge_retrieval(SOURCE, model)
    assert verdict.kept is False
    assert verdict.reasons == [
        "copy-probe loss 9.00 is 4.5x the source's 2.00 (keep: <= 1.3x)",
        "passkey at 1,024 tokens 0% vs the source's 100%",
    ]
    assert verdict.sentence() == "in-context retrieval LOST: " + "; ".join(verdict.reasons)


def test_unknown_without_a_common_probe() -> None:
    assert judge_retrieval(SOURCE, {}).kept is None
    assert judge_retrieval({}, SOURCE).kept is None
    # a length where the source fails is not judged
    only_failed = judge_retrieval(
        {"passkey_success": {"1024": 0.0}}, {"passkey_success": {"1024": 0.0}}
    )
    assert only_failed.kept is None
    assert "not measured" in only_failed.sentence()


def test_reads_result_dicts_and_objects() -> None:
    from gqa_retrofit.evaluation.retrieval import RetrievalResult
    from gqa_retrofit.evaluation.retrieval_copy import CopyProbeResult, CopyTrial

    def result(loss: float) -> RetrievalResult:
        copy = CopyProbeResult(256, 1, 0, 100, 1, False, [CopyTrial(10.0, loss)])
        return RetrievalResult(copy=copy)

    assert judge_retrieval(result(2.0), result(5.0).to_dict()).kept is False
    assert judge_retrieval(result(2.0).to_dict(), result(2.0)).kept is True


def test_records_round_trip_and_the_card_note() -> None:
    from gqa_retrofit.evaluation.retrieval import RetrievalResult
    from gqa_retrofit.evaluation.retrieval_copy import CopyProbeResult, CopyTrial
    from gqa_retrofit.evaluation.retrieval_passkey import (
        PasskeyCell,
        PasskeyLength,
        PasskeyResult,
    )
    from gqa_retrofit.evaluation.retrieval_verdict import (
        evaluation_records,
        retrieval_note,
        summary_from_records,
    )

    def result(successes: int, loss: float) -> RetrievalResult:
        passkey = PasskeyResult(
            "filler",
            0,
            [0.5],
            5,
            8192,
            1,
            [PasskeyLength(1024, False, [PasskeyCell(0.5, successes, 5)])],
        )
        copy = CopyProbeResult(256, 4, 0, 100, 1, False, [CopyTrial(10.0, loss)])
        return RetrievalResult(passkey=passkey, copy=copy)

    source = evaluation_records("source", result(5, 2.0))
    assert source == [
        {
            "model": "source",
            "dataset": "passkey retrieval (filler haystack)",
            "metric": "passkey_success@1024",
            "value": 1.0,
            "seq_len": 1024,
            "trials": 5,
        },
        {
            "model": "source",
            "dataset": "copy probe (256 random tokens, repeated)",
            "metric": "copy_second_copy_loss",
            "value": 2.0,
            "trials": 4,
        },
    ]
    assert summary_from_records(source, "source") == {
        "passkey_success": {"1024": 1.0},
        "copy_second_copy_loss": 2.0,
    }
    converted = evaluation_records("converted", result(0, 9.0))
    trained = evaluation_records("trained", result(5, 2.2))
    assert retrieval_note(source + converted + trained) is None  # the trained model kept it
    note = retrieval_note(source + converted)
    assert note == (
        "This model lost the source's in-context retrieval (copy-probe loss 9.00 is 4.5x the "
        "source's 2.00 (keep: <= 1.3x); passkey at 1,024 tokens 0% vs the source's 100%): it may "
        "not find or copy what is in its context, whatever its perplexity."
    )
    assert retrieval_note([]) is None
