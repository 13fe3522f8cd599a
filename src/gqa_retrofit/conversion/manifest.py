"""The ``gqa_retrofit.json`` manifest written next to a converted checkpoint's ``config.json``.

It records where the weights came from (source name, resolved path, Hub revision or a content
fingerprint), what was done (method, per-layer grouping/permutation records, calibration data
fingerprint, head counts before and after), what was written (files, sizes, tensor counts), the
tool versions and the timings. :func:`~gqa_retrofit.conversion.verify.verify_checkpoint` checks a
directory against it. Tokens never appear in it.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConversionError

MANIFEST_NAME = "gqa_retrofit.json"
MANIFEST_FORMAT = "gqa-retrofit-conversion"
MANIFEST_VERSION = 1
_HASH_CHUNK = 4 * 1024**2


def hub_revision(directory: str | os.PathLike[str]) -> str | None:
    """The commit hash of a Hub snapshot directory (``.../snapshots/<commit>``), else None."""
    path = Path(directory).resolve()
    name = path.name
    if (
        path.parent.name == "snapshots"
        and len(name) == 40
        and all(c in "0123456789abcdef" for c in name)
    ):
        return name
    return None


def source_fingerprint(
    directory: str | os.PathLike[str], shard_files: Sequence[str]
) -> dict[str, Any]:
    """A cheap content fingerprint of a local checkpoint.

    SHA-256 over ``config.json`` and, for each shard, its name, size and full safetensors header
    (every tensor's name, dtype, shape and byte range). Reading the headers instead of the data
    keeps it instant on multi-GB checkpoints; it changes whenever the architecture, a shape, a
    dtype or the file layout changes.
    """
    directory = Path(directory)
    digest = hashlib.sha256()
    digest.update((directory / "config.json").read_bytes())
    for name in sorted(shard_files):
        path = directory / name
        size = path.stat().st_size
        with path.open("rb") as f:
            head = f.read(8)
            header_len = int.from_bytes(head, "little")
            header = f.read(header_len)
        digest.update(f"{name}\0{size}\0".encode())
        digest.update(header)
    return {
        "algorithm": "sha256",
        "covers": "config.json + each shard's name, size and safetensors header",
        "digest": digest.hexdigest(),
    }


def file_sha256(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        while chunk := f.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def calibration_fingerprint(
    text_paths: Sequence[str | os.PathLike[str]], tokens: int
) -> dict[str, Any]:
    """Identify calibration data: per-file SHA-256 and size, the token budget, one digest."""
    files = []
    digest = hashlib.sha256(f"tokens={tokens}\0".encode())
    for path in text_paths:
        sha = file_sha256(path)
        files.append({"name": Path(path).name, "bytes": Path(path).stat().st_size, "sha256": sha})
        digest.update(sha.encode())
    return {"files": files, "tokens": tokens, "digest": digest.hexdigest()}


def tool_versions() -> dict[str, str]:
    import huggingface_hub
    import safetensors
    import torch
    import transformers

    from .._version import __version__

    return {
        "gqa_retrofit": __version__,
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "safetensors": safetensors.__version__,
        "huggingface_hub": huggingface_hub.__version__,
    }


def build_manifest(
    *,
    source: dict[str, Any],
    method: dict[str, Any],
    heads_before: dict[str, int],
    heads_after: dict[str, int],
    layers: list[dict[str, Any]],
    files: dict[str, dict[str, int]],
    dtype: str,
    model_type: str,
    calibration: dict[str, Any] | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    """Assemble the manifest dict (JSON-able; see the module docstring for the fields)."""
    return {
        "format": MANIFEST_FORMAT,
        "format_version": MANIFEST_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "tool": tool_versions(),
        "source": source,
        "method": method,
        "heads": {"before": heads_before, "after": heads_after},
        "calibration": calibration,
        "output": {
            "model_type": model_type,
            "dtype": dtype,
            "files": files,
            "tensors": sum(f["tensors"] for f in files.values()),
            "bytes": sum(f["bytes"] for f in files.values()),
        },
        "layers": layers,
        "timings": {k: round(v, 4) for k, v in timings.items()},
    }


def write_manifest(directory: str | os.PathLike[str], manifest: dict[str, Any]) -> Path:
    path = Path(directory) / MANIFEST_NAME
    path.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return path


def read_manifest(directory: str | os.PathLike[str]) -> dict[str, Any]:
    """Load and sanity-check the manifest of a converted checkpoint.

    Raises:
        ConversionError: no manifest, not JSON, or not a gqa-retrofit conversion manifest.
    """
    path = Path(directory) / MANIFEST_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConversionError(
            f"{str(directory)!r} has no {MANIFEST_NAME}: not a checkpoint written by "
            "gqa-retrofit convert"
        ) from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ConversionError(f"{MANIFEST_NAME} in {str(directory)!r} is not valid JSON") from None
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ConversionError(
            f"{MANIFEST_NAME} in {str(directory)!r} is not a gqa-retrofit conversion manifest"
        )
    if int(data.get("format_version", 0)) > MANIFEST_VERSION:
        raise ConversionError(
            f"{MANIFEST_NAME} has format_version {data.get('format_version')}; this gqa-retrofit "
            f"reads up to {MANIFEST_VERSION}: upgrade gqa-retrofit"
        )
    return data
