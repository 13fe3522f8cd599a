"""The generated "supported families" page stays in sync with the family table."""

from __future__ import annotations

from pathlib import Path

from gqa_retrofit.arch import FAMILIES
from gqa_retrofit.arch.markdown import families_markdown, retrofit_text

PAGE = Path(__file__).parents[2] / "docs" / "families.md"


def test_docs_page_is_current() -> None:
    assert PAGE.read_text(encoding="utf-8") == families_markdown(), (
        "docs/families.md is stale: run "
        "`PYTHONPATH=src python -m gqa_retrofit.arch.markdown > docs/families.md`"
    )


def test_one_row_per_family_with_eight_cells() -> None:
    rows = [line for line in families_markdown().splitlines() if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == sorted(FAMILIES)
    assert all(row.count("|") == 9 for row in rows)  # no stray pipes break the table


def test_retrofit_output_words() -> None:
    assert retrofit_text(FAMILIES["mistral"]) == "native `mistral`"
    assert retrofit_text(FAMILIES["gpt2"]).startswith("custom type `gpt2_gqa`")
    assert "`mistral` when `hidden_size`" in retrofit_text(FAMILIES["llama"])
