"""What a data source spec does not say by itself: the text column, the Hub dataset's config,
split and revision, and the sampling seed. One object, shared by calibration, training and
evaluation (and declared once as CLI flags)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import DataError


@dataclass(frozen=True)
class DataOptions:
    """How to read text sources (files, directories, globs, Hub datasets).

    Raises:
        DataError: an empty text column or split, or a negative seed.
    """

    text_column: str = field(
        default="text",
        metadata={"help": "column holding the text in .jsonl/.json/.parquet files and datasets"},
    )
    dataset_config: str | None = field(
        default=None,
        metadata={"help": "configuration (subset) name of a Hub or local dataset repository"},
    )
    dataset_split: str = field(
        default="train", metadata={"help": "split of a Hub or local dataset repository"}
    )
    dataset_revision: str | None = field(
        default=None,
        metadata={"help": "branch, tag or commit of a Hub dataset (local files: not used)"},
    )
    data_seed: int = field(
        default=0, metadata={"help": "seed of the choice of windows inside each source"}
    )

    def __post_init__(self) -> None:
        if not self.text_column.strip():
            raise DataError("text_column must name a column, got an empty string")
        if not self.dataset_split.strip():
            raise DataError("dataset_split must name a split (e.g. train), got an empty string")
        if self.data_seed < 0:
            raise DataError(f"data seed must be a non-negative integer, got {self.data_seed}")
