from __future__ import annotations

import itertools
import math

import pytest

from gqa_retrofit.training.schedule import lr_multiplier


def test_wsd_warms_up_holds_then_decays_linearly() -> None:
    f = [
        lr_multiplier(s, 10, schedule="wsd", warmup=2, decay_fraction=0.2, min_lr_ratio=0.1)
        for s in range(10)
    ]
    assert f[:2] == [0.5, 1.0]
    assert f[2:8] == [1.0] * 6
    assert f[8] == pytest.approx(1.0 - 0.9 * 0.5)
    assert f[9] == pytest.approx(0.1)


def test_cosine_ends_at_min_ratio() -> None:
    f = [lr_multiplier(s, 12, schedule="cosine", warmup=2, min_lr_ratio=0.0) for s in range(12)]
    assert f[0] == 0.5 and f[1] == 1.0
    assert f[-1] == pytest.approx(0.0, abs=1e-12)
    mid = 2 + 5 - 1  # progress 0.5 after warmup
    assert f[mid] == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.5)))
    assert all(a >= b for a, b in itertools.pairwise(f[1:]))


def test_unknown_schedule() -> None:
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_multiplier(3, 10, schedule="step", warmup=0)
