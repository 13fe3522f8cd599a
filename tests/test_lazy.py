"""Lazy re-exports (``_lazy.lazy_exports``): import on first access, one-line AttributeError."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gqa_retrofit._lazy import lazy_exports


def test_a_name_is_imported_on_first_access_and_cached() -> None:
    cache: dict[str, object] = {}
    getattr_ = lazy_exports("gqa_retrofit", {"dtype_bits": "gqa_retrofit.devices"}, cache=cache)
    from gqa_retrofit.devices import dtype_bits

    assert getattr_("dtype_bits") is dtype_bits and cache == {"dtype_bits": dtype_bits}
    relative = lazy_exports("gqa_retrofit.data", {"DataOptions": "options"})
    from gqa_retrofit.data.options import DataOptions

    assert relative("DataOptions") is DataOptions
    with pytest.raises(AttributeError) as err:
        relative("x")
    assert str(err.value) == "module 'gqa_retrofit.data' has no attribute 'x'"


def test_the_packages_stay_torch_free_until_used() -> None:
    code = (
        "import sys, gqa_retrofit, gqa_retrofit.data, gqa_retrofit.training\n"
        "gqa_retrofit.data.DataOptions; gqa_retrofit.training.TrainOptions\n"
        "gqa_retrofit.ConfigError\n"
        "assert 'torch' not in sys.modules, 'torch imported'\n"
        "gqa_retrofit.estimate\n"
        "print(gqa_retrofit.__dict__['estimate'].__module__)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "gqa_retrofit.cost.report"
