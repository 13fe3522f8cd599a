"""Copy-structured calibration windows (gqa_retrofit.data.copy_structure)."""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit.data.copy_structure import (
    RANDOM_SPAN_SEED,
    add_copy_structure,
    check_copy_fraction,
    random_span_ids,
)
from gqa_retrofit.errors import DataError


def _windows(n: int = 6, seq_len: int = 8) -> torch.Tensor:
    return torch.arange(n * seq_len).view(n, seq_len) + 1000


def test_last_windows_become_repeated_spans_alternating_text_and_random() -> None:
    windows = _windows()
    ids = torch.arange(10, 20)
    out, record = add_copy_structure(windows, 0.5, span_ids=ids, seed=3)
    assert out.shape == windows.shape
    assert torch.equal(out[:3], windows[:3])  # the first windows are untouched
    # window 3: its own first half, twice
    assert torch.equal(out[3], torch.cat([windows[3, :4], windows[3, :4]]))
    # window 4: a random span of the allowed ids, twice
    assert torch.equal(out[4, :4], out[4, 4:])
    assert set(out[4].tolist()) <= set(ids.tolist())
    assert torch.equal(out[5], torch.cat([windows[5, :4], windows[5, :4]]))
    assert record.to_dict() == {
        "fraction": 0.5,
        "text_windows": 2,
        "random_windows": 1,
        "span": 4,
        "seed": 3,
    }
    assert torch.equal(windows, _windows())  # the input is not modified


def test_random_spans_are_seeded() -> None:
    ids = torch.arange(100)
    a, _ = add_copy_structure(_windows(), 0.5, span_ids=ids, seed=1)
    b, _ = add_copy_structure(_windows(), 0.5, span_ids=ids, seed=1)
    c, _ = add_copy_structure(_windows(), 0.5, span_ids=ids, seed=2)
    assert torch.equal(a, b)
    assert not torch.equal(a[4], c[4])
    g = torch.Generator().manual_seed(1 + RANDOM_SPAN_SEED)
    assert torch.equal(a[4, :4], ids[torch.randint(0, 100, (4,), generator=g)])


def test_fraction_zero_keeps_the_windows_and_odd_length_keeps_the_last_token() -> None:
    windows = _windows(seq_len=9)
    out, record = add_copy_structure(windows, 0.0, span_ids=torch.arange(5))
    assert torch.equal(out, windows)
    assert (record.text_windows, record.random_windows) == (0, 0)
    out, _ = add_copy_structure(windows, 0.2, span_ids=torch.arange(5))
    assert torch.equal(out[5, :8], torch.cat([windows[5, :4], windows[5, :4]]))
    assert out[5, 8] == windows[5, 8]


def test_special_ids_are_never_drawn() -> None:
    ids = random_span_ids(6, [0, 5, 99])
    assert ids.tolist() == [1, 2, 3, 4]
    with pytest.raises(DataError, match="no room for random spans"):
        random_span_ids(2, [0])


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan"), "half", True])
def test_bad_fraction_is_one_line_error(bad: object) -> None:
    with pytest.raises(DataError, match=r"copy fraction must be"):
        check_copy_fraction(bad)  # type: ignore[arg-type]


def test_too_short_windows_are_refused() -> None:
    with pytest.raises(DataError, match="seq_len >= 4, got 3"):
        add_copy_structure(torch.zeros(3, 3, dtype=torch.long), 0.5, span_ids=torch.arange(5))
