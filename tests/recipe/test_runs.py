"""Reading a runs CSV, per-context selection and per-configuration fits."""

from __future__ import annotations

from pathlib import Path

import pytest

from gqa_retrofit.errors import DataError
from gqa_retrofit.recipe.recommend import recommend
from gqa_retrofit.recipe.runs import fit_runs, read_runs, select_context
from gqa_retrofit.recipe.search import HeadConfig

EXAMPLE = Path(__file__).parents[2] / "examples" / "runs_synthetic.csv"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "runs.csv"
    path.write_text(text, encoding="utf-8")
    return path


def test_reads_rows_comments_and_optional_context(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "# my runs\nheads, kv_heads,non_embedding_params,loss,context,note\n"
        "8,2,1.2e8,3.01,8192,first\n\n16,4,250000000,2.87,,\n",
    )
    runs = read_runs(path)
    assert [(r.heads, r.kv_heads, r.non_embedding_params, r.loss, r.context) for r in runs] == [
        (8, 2, 1.2e8, 3.01, 8192),
        (16, 4, 2.5e8, 2.87, None),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "is empty"),
        ("heads,kv_heads,loss\n8,2,3.0\n", "lacks column(s) non_embedding_params"),
        ("heads,kv_heads,non_embedding_params,loss\n", "holds a header but no runs"),
        (
            "heads,kv_heads,non_embedding_params,loss\n8,2,big,3.0\n",
            "line 2: column 'non_embedding_params' holds 'big', not a number",
        ),
        (
            "heads,kv_heads,non_embedding_params,loss\n8,2.5,1e8,3.0\n",
            "line 2: column 'kv_heads' holds '2.5': must be a positive integer",
        ),
        (
            "heads,kv_heads,non_embedding_params,loss\n2,8,1e8,3.0\n",
            "line 2: kv_heads 8 exceeds heads 2",
        ),
    ],
)
def test_bad_runs_files_are_refused(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(DataError) as err:
        read_runs(_write(tmp_path, text))
    assert message in str(err.value)


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        read_runs(tmp_path / "none.csv")


def test_mixed_contexts_need_a_choice(tmp_path: Path) -> None:
    rows = "".join(
        f"4,1,{n},{3 + 1e7 / n:.4f},{ctx}\n" for ctx in (2048, 8192) for n in (1e7, 1e8, 1e9, 1e10)
    )
    runs = read_runs(_write(tmp_path, "heads,kv_heads,non_embedding_params,loss,context\n" + rows))
    with pytest.raises(DataError, match=r"mix training contexts \[2048, 8192\]"):
        select_context(runs, None)
    assert len(select_context(runs, 8192)) == 4
    with pytest.raises(DataError, match="no run was trained at context 4096"):
        select_context(runs, 4096)


def test_unfittable_configuration_is_refused_or_skipped(tmp_path: Path) -> None:
    text = (
        "heads,kv_heads,non_embedding_params,loss\n"
        + "".join(f"4,1,{n},{2 + (1e8 / n) ** 0.3:.5f}\n" for n in (1e7, 3e7, 1e8, 3e8, 1e9))
        + "8,1,1e8,2.9\n8,1,1e9,2.5\n"
    )
    runs = read_runs(_write(tmp_path, text))
    with pytest.raises(DataError, match="head configuration 8:1: 2 run"):
        fit_runs(runs)
    fits, refused = fit_runs(runs, skip_unfittable=True)
    assert list(fits) == [HeadConfig(4, 1)]
    assert "need at least 4 runs" in refused["8:1"]


def test_example_runs_fit_close_to_the_law_they_were_drawn_from() -> None:
    # examples/runs_synthetic.csv is drawn from loss = (1e8/N)^0.28 + floor(heads, kv) + noise
    result = recommend(EXAMPLE, context=131072, target_loss=2.6, baseline="32:8")
    assert len(result.fits) == 21
    for config, fit in result.fits.items():
        floor = 1.75 + 0.30 * config.heads**-0.35 + 0.12 * config.kv_heads**-0.4
        assert fit.r2 > 0.9998
        assert abs(fit.e - floor) < 4 * fit.e_stderr + 0.01
        assert abs(fit.b - 0.28) < 4 * fit.b_stderr + 0.01
