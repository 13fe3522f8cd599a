"""Tiny-model tests here run single-threaded: on a busy 2-core machine, thread
oversubscription makes millisecond forwards take hundreds of milliseconds."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
