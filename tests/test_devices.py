"""The device/dtype vocabulary: names, aliases, device resolution, checks and guarded calls.

CUDA and MPS are absent on the test machine; their branches are driven by stubbing torch's
availability queries (``torch.cuda.is_available``/``device_count``), never by faking tensors.
"""

from __future__ import annotations

import pytest
import torch

from gqa_retrofit import devices
from gqa_retrofit.devices import (
    check_dtype_on_device,
    check_values_fit,
    checkpoint_dtype,
    dtype_bytes,
    dtype_name,
    peak_memory_bytes,
    reset_peak_memory,
    resolve_device,
    resolve_dtype,
    synchronize,
    torch_dtype,
)
from gqa_retrofit.errors import ConfigError


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch):
    """Pretend two CUDA devices exist (only availability queries are stubbed)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize(
    ("spelling", "name", "nbytes", "torch_type"),
    [
        ("bf16", "bf16", 2, torch.bfloat16),
        ("bfloat16", "bf16", 2, torch.bfloat16),
        ("BF16", "bf16", 2, torch.bfloat16),
        ("fp16", "fp16", 2, torch.float16),
        ("float16", "fp16", 2, torch.float16),
        ("half", "fp16", 2, torch.float16),
        ("fp32", "fp32", 4, torch.float32),
        ("float32", "fp32", 4, torch.float32),
        ("float", "fp32", 4, torch.float32),
        (torch.bfloat16, "bf16", 2, torch.bfloat16),
        ("torch.float16", "fp16", 2, torch.float16),
    ],
)
def test_every_spelling_maps_to_one_name(spelling, name, nbytes, torch_type) -> None:
    assert dtype_name(spelling) == name
    assert dtype_bytes(spelling) == nbytes
    assert torch_dtype(spelling) is torch_type


@pytest.mark.parametrize(
    ("spelling", "nbytes"),
    [("bf16", 2), ("bfloat16", 2), ("half", 2), ("float16", 2), ("fp32", 4), ("float", 4)],
)
def test_every_part_reads_the_one_vocabulary(tmp_path, spelling: str, nbytes: int) -> None:
    """The estimator (weights and KV cache) and the retrofit plan accept every spelling."""
    import json

    from gqa_retrofit.cost.serving import kv_dtype
    from gqa_retrofit.pipeline.retrofit import _config_dtype_bytes

    assert devices.dtype_bits(spelling) == 8 * nbytes
    assert kv_dtype(spelling).name == dtype_name(spelling)  # "float" was refused here
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "dtype": spelling}))
    assert _config_dtype_bytes(str(tmp_path)) == nbytes  # "bf16", "half" counted 4 bytes


def test_quantized_storage_widths_and_their_message() -> None:
    assert [devices.dtype_bits(n) for n in ("fp8", "INT8", "int4")] == [8, 8, 4]
    with pytest.raises(ConfigError) as info:
        devices.dtype_bits("fp64")
    assert str(info.value) == "unknown dtype 'fp64'; valid: fp32, bf16, fp16, fp8, int8, int4"


def test_unknown_dtype_is_one_line_naming_the_value_and_the_valid_ones() -> None:
    with pytest.raises(ConfigError) as info:
        dtype_name("int4")
    assert str(info.value) == (
        "unknown dtype 'int4': valid are bf16, fp16, fp32 (bfloat16, float16, float32 alike)"
    )
    assert info.value.exit_code == 2
    with pytest.raises(ConfigError, match="valid are auto, bf16, fp16, fp32"):
        dtype_name("fp8", allow_auto=True)
    with pytest.raises(ConfigError, match="unknown dtype 'auto'"):
        dtype_name("auto")  # only where the caller accepts it


def test_auto_dtype_is_the_checkpoints() -> None:
    assert checkpoint_dtype({"dtype": "bfloat16"}) == "bf16"
    assert checkpoint_dtype({"torch_dtype": "float16"}) == "fp16"
    assert checkpoint_dtype({"dtype": None, "torch_dtype": "float32"}) == "fp32"
    assert checkpoint_dtype({"dtype": "float64"}) is None
    assert checkpoint_dtype({}) is None

    class Config:
        dtype = torch.bfloat16

    assert checkpoint_dtype(Config()) == "bf16"
    assert resolve_dtype("auto", checkpoint="bf16") == "bf16"
    assert resolve_dtype("auto", checkpoint=None) == "fp32"
    assert resolve_dtype("bfloat16", checkpoint="fp32") == "bf16"


def test_devices_on_this_cpu_machine() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(" CPU ") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only message")
def test_cuda_without_cuda_is_refused_with_what_is_available() -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda")
    why = "torch was built without CUDA" if torch.version.cuda is None else "no CUDA device found"
    assert str(info.value) == f"device 'cuda' is not available ({why}): use one of auto, cpu"
    with pytest.raises(ConfigError, match=r"device 'cuda:1' is not available"):
        resolve_device("cuda:1")


@pytest.mark.parametrize("bad", ["tpu", "cuda:x", "cpu:0", "mps:1", "gpu", ""])
def test_unknown_device_names_the_value_and_the_valid_ones(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_device(bad)
    assert str(info.value).startswith(
        f"unknown device {bad!r}: valid are auto, cpu, cuda, cuda:N, mps (available here: "
    )


def test_mps_absent_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_mps_available", lambda: False)
    with pytest.raises(ConfigError, match=r"^device 'mps' is not available \(no Apple MPS here\)"):
        resolve_device("mps")


def test_auto_picks_the_accelerator(fake_cuda, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_device("auto") == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert devices.available_devices() == ["cpu", "cuda", "cuda:0", "cuda:1"]
    with pytest.raises(ConfigError) as info:
        resolve_device("cuda:2")
    assert str(info.value) == (
        "device 'cuda:2' does not exist: 2 CUDA device(s) here, use one of auto, cpu, cuda, "
        "cuda:0, cuda:1"
    )


def test_auto_picks_mps_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "_cuda_count", lambda: 0)
    monkeypatch.setattr(devices, "_mps_available", lambda: True)
    assert resolve_device("auto") == torch.device("mps")
    assert devices.available_devices() == ["cpu", "mps"]


def test_every_dtype_computes_on_this_cpu() -> None:
    for name in ("bf16", "fp16", "fp32"):
        check_dtype_on_device(name, "cpu")
    assert resolve_dtype("fp16", device="cpu") == "fp16"


def test_a_dtype_the_device_cannot_compute_in_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """An old CPU build without half kernels: the probe's own error is quoted."""
    devices._computes.cache_clear()
    real_linear = torch.nn.functional.linear

    def linear(x, w, *args):
        if x.dtype == torch.float16:
            raise RuntimeError("\"addmm_impl_cpu_\" not implemented for 'Half'")
        return real_linear(x, w, *args)

    monkeypatch.setattr(torch.nn.functional, "linear", linear)
    try:
        with pytest.raises(ConfigError) as info:
            resolve_dtype("float16", device="cpu")
        assert str(info.value) == (
            "dtype 'fp16' is not supported on device 'cpu' (\"addmm_impl_cpu_\" not implemented "
            "for 'Half'): use bf16, fp32"
        )
    finally:
        devices._computes.cache_clear()


def test_values_beyond_fp16_are_refused_naming_the_tensor() -> None:
    weights = [
        ("model.embed.weight", torch.tensor([1.0, -3.0])),
        ("model.layers.0.mlp.down_proj.weight", torch.tensor([1.0, -70000.0, float("inf")])),
    ]
    check_values_fit(weights, "bf16")
    check_values_fit(weights, "fp32")
    check_values_fit([("ids", torch.tensor([100000]))], "fp16")  # integers are not cast
    with pytest.raises(ConfigError) as info:
        check_values_fit(weights, "half")
    assert str(info.value) == (
        "dtype 'fp16' cannot hold the checkpoint's values: model.layers.0.mlp.down_proj.weight "
        "reaches 70000, above fp16's largest 65504; use bf16, fp32"
    )


def test_accelerator_calls_are_guarded_on_the_cpu() -> None:
    synchronize("cpu")
    reset_peak_memory(torch.device("cpu"))
    assert peak_memory_bytes("cpu") is None
    devices.empty_cache("cpu")


def test_accelerator_calls_reach_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, object]] = []
    monkeypatch.setattr(torch.cuda, "synchronize", lambda d=None: calls.append(("sync", d)))
    monkeypatch.setattr(
        torch.cuda, "reset_peak_memory_stats", lambda d=None: calls.append(("reset", d))
    )
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda d=None: 12345)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: calls.append(("empty", None)))
    device = torch.device("cuda", 1)
    synchronize(device)
    reset_peak_memory(device)
    assert peak_memory_bytes(device) == 12345
    devices.empty_cache(device)
    assert calls == [("sync", device), ("reset", device), ("empty", None)]


def test_the_vocabulary_imports_without_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys; import gqa_retrofit.devices as d; "
        "assert d.DTYPE_BYTES['bf16'] == 2 and d.dtype_name('bfloat16') == 'bf16'; "
        "print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
