"""Markdown pipe tables, the one renderer behind the reports' ``to_markdown()``."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]], align: str) -> str:
    """A pipe table; ``align`` has one letter per column: ``l`` left, ``r`` right.

    Raises:
        ValueError: ``align`` or a row does not have one entry per header.
    """
    if len(align) != len(headers) or any(len(row) != len(headers) for row in rows):
        raise ValueError(f"every row and the alignment need {len(headers)} columns")
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = [headers, rule, *[[str(cell) for cell in row] for row in rows]]
    return "\n".join("| " + " | ".join(cells) + " |" for cells in lines)
