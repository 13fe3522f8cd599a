"""Whether a retrofit kept in-context retrieval: one rule for the report, card, plan and push.

A model *keeps* retrieval when, against the source measured with the same probes,

- its passkey success is at least :data:`PASSKEY_KEEP` (90%) of the source's at every length both
  were measured at (lengths where the source itself fails are not counted), and
- its copy-probe loss on the second copy is at most :data:`COPY_KEEP` (1.3x) the source's.

These are issue 14's targets for a trained retrofit. A probe measured on only one side is not
judged; with no probe on both sides the verdict is ``None`` (unknown), never "kept".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

PASSKEY_KEEP = 0.9  # fraction of the source's success rate, at every length
COPY_KEEP = 1.3  # at most this multiple of the source's second-copy loss


@dataclass
class RetrievalVerdict:
    """Kept (True), lost (False) or unknown (None), with one reason per failed check."""

    kept: bool | None
    reasons: list[str] = field(default_factory=list)
    copy_loss_ratio: float | None = None  # model / source second-copy loss
    passkey_ratio: dict[str, float] = field(default_factory=dict)  # length -> model/source

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def sentence(self) -> str:
        """One line for a report, a card or a warning."""
        if self.kept is None:
            return "in-context retrieval was not measured on both models"
        if self.kept:
            return "in-context retrieval kept (passkey >= 90% of the source's, copy loss <= 1.3x)"
        return "in-context retrieval LOST: " + "; ".join(self.reasons)


def _summary(result: Any) -> dict[str, Any]:
    """The ``summary`` of a RetrievalResult, its dict, or a summary dict itself."""
    if hasattr(result, "summary"):
        return dict(result.summary())
    if isinstance(result, dict) and "summary" in result:
        return dict(result["summary"])
    return dict(result) if isinstance(result, dict) else {}


def judge_retrieval(source: Any, model: Any) -> RetrievalVerdict:
    """Compare a model's retrieval probes with the source's (see the module docstring).

    Args:
        source: the source's :class:`RetrievalResult`, its ``to_dict()`` or its ``summary()``.
        model: the same for the converted or trained model.
    """
    src, got = _summary(source), _summary(model)
    verdict = RetrievalVerdict(kept=None)
    judged = False
    src_copy, got_copy = src.get("copy_second_copy_loss"), got.get("copy_second_copy_loss")
    if src_copy is not None and got_copy is not None and src_copy > 0:
        judged = True
        verdict.copy_loss_ratio = float(got_copy) / float(src_copy)
        if verdict.copy_loss_ratio > COPY_KEEP:
            verdict.reasons.append(
                f"copy-probe loss {got_copy:.2f} is {verdict.copy_loss_ratio:.1f}x the source's "
                f"{src_copy:.2f} (keep: <= {COPY_KEEP}x)"
            )
    src_pk, got_pk = src.get("passkey_success") or {}, got.get("passkey_success") or {}
    for length in sorted(set(src_pk) & set(got_pk), key=int):
        if src_pk[length] <= 0:
            continue  # the source itself fails here: nothing to keep
        judged = True
        ratio = float(got_pk[length]) / float(src_pk[length])
        verdict.passkey_ratio[length] = ratio
        if ratio < PASSKEY_KEEP:
            verdict.reasons.append(
                f"passkey at {int(length):,} tokens {100 * got_pk[length]:.0f}% vs the source's "
                f"{100 * src_pk[length]:.0f}%"
            )
    if judged:
        verdict.kept = not verdict.reasons
    return verdict


PASSKEY_METRIC = "passkey_success@"  # + the prompt length in tokens
COPY_METRIC = "copy_second_copy_loss"
LONG_METRIC = "long_window_perplexity"


def evaluation_records(model: str, result: Any) -> list[dict[str, Any]]:
    """Manifest ``evaluations`` records of one model's retrieval result (card, model-index).

    Args:
        model: ``"source"``, ``"converted"`` or ``"trained"``.
        result: a :class:`RetrievalResult` or its ``to_dict()``.
    """
    data = result.to_dict() if hasattr(result, "to_dict") else dict(result)
    records: list[dict[str, Any]] = []
    passkey = data.get("passkey")
    if passkey:
        haystack = "filler" if passkey["haystack"] == "filler" else "natural text"
        for row in passkey["lengths"]:
            records.append(
                {
                    "model": model,
                    "dataset": f"passkey retrieval ({haystack} haystack)",
                    "metric": f"{PASSKEY_METRIC}{row['length']}",
                    "value": row["success_rate"],
                    "seq_len": row["length"],
                    "trials": row["trials"],
                }
            )
    copy = data.get("copy")
    if copy:
        records.append(
            {
                "model": model,
                "dataset": f"copy probe ({copy['span_length']} random tokens, repeated)",
                "metric": COPY_METRIC,
                "value": copy["second_copy_loss"],
                "trials": copy["trials"],
            }
        )
    long_window = data.get("long_window")
    if long_window:
        records.append(
            {
                "model": model,
                "dataset": f"{long_window['data'].rsplit('/', 1)[-1]} (long windows)",
                "metric": LONG_METRIC,
                "value": long_window["perplexity"],
                "seq_len": long_window["seq_len"],
                "tokens": long_window["tokens"],
            }
        )
    return records


def summary_from_records(records: list[dict[str, Any]], model: str) -> dict[str, Any]:
    """The ``summary()`` of one model rebuilt from its evaluation records (for the card)."""
    summary: dict[str, Any] = {}
    for record in records:
        if record.get("model") != model or not isinstance(record.get("value"), (int, float)):
            continue
        metric = str(record.get("metric", ""))
        if metric.startswith(PASSKEY_METRIC):
            length = metric.removeprefix(PASSKEY_METRIC)
            summary.setdefault("passkey_success", {})[length] = float(record["value"])
        elif metric == COPY_METRIC:
            summary["copy_second_copy_loss"] = float(record["value"])
    return summary


def retrieval_note(evaluations: list[dict[str, Any]]) -> str | None:
    """The card's warning when the final model (trained, else converted) lost retrieval."""
    models = {str(r.get("model")) for r in evaluations}
    final = "trained" if "trained" in models else "converted"
    verdict = judge_retrieval(
        summary_from_records(evaluations, "source"), summary_from_records(evaluations, final)
    )
    if verdict.kept is not False:
        return None
    return (
        f"This model lost the source's in-context retrieval ({'; '.join(verdict.reasons)}): it "
        "may not find or copy what is in its context, whatever its perplexity."
    )
