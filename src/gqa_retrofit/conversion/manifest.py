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
from ..sources import HUB_REPO_ID

MANIFEST_NAME = "gqa_retrofit.json"
MANIFEST_FORMAT = "gqa-retrofit-conversion"
MANIFEST_VERSION = 1
_HASH_CHUNK = 4 * 1024**2
# Files of an output directory that the manifest does not hash: itself, our hidden marker,
# and the card and plot that `card`/`push` add afterwards.
_UNHASHED = {MANIFEST_NAME, "README.md", "gqa_retrofit_cost.png"}


def is_hub_id(name: str) -> bool:
    """Whether ``name`` looks like a Hub repo id (``owner/name``) and is no local path."""
    return bool(HUB_REPO_ID.match(name)) and not Path(name).exists()


def source_label(name: str, out: str | os.PathLike[str]) -> str:
    """How a source is recorded: a Hub id as is, a local path relative to the output ``out``.

    Outputs get published: they must not carry the user's home or cache directories.
    """
    if not Path(name).exists() and HUB_REPO_ID.match(name):
        return name
    return os.path.relpath(Path(name).resolve(), Path(out).resolve()).replace(os.sep, "/")


def hub_origin(name: str, directory: str | os.PathLike[str]) -> str | None:
    """The Hub id a source comes from: ``name`` itself, a Hub cache snapshot's repo, or the
    embedded model's declared origin; None for a plain local checkpoint."""
    if is_hub_id(name):
        return name
    path = Path(directory).resolve()
    repo = path.parent.parent.name  # .../models--owner--name/snapshots/<commit>
    if hub_revision(path) and repo.startswith("models--") and repo.count("--") >= 2:
        return "/".join(repo.split("--")[1:3])
    origin = embedded_origin(path)
    return None if origin is None else str(origin["base_model"])


def embedded_origin(directory: str | os.PathLike[str]) -> dict[str, str] | None:
    """Where the embedded default model comes from, when ``directory`` is it (else None)."""
    from ..assets.model import embedded_origin as origin_of

    return origin_of(Path(directory))


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


def rebase_manifest(
    manifest: dict[str, Any], old: str | os.PathLike[str], new: str | os.PathLike[str]
) -> None:
    """Make the relative source path of a manifest moved from directory ``old`` to ``new``
    relative to ``new`` (a Hub id stays as it is), and every absolute path in it (e.g. the
    training record's data and output paths) relative to ``new``."""
    from .._fs import portable_paths

    manifest.update(portable_paths(manifest, new))
    source = manifest.get("source")
    if not isinstance(source, dict):
        return
    name = source.get("name")
    if not isinstance(name, str) or os.path.isabs(name) or is_hub_id(name):
        return
    if (Path(old) / name).exists():
        source["name"] = source_label(str(Path(old) / name), new)


def record_output_files(directory: str | os.PathLike[str], manifest: dict[str, Any]) -> None:
    """Record every file of ``directory`` in ``manifest["output"]``, with a streamed SHA-256.

    Weight files (``*.safetensors``) go to ``files`` (tensors, bytes, sha256), every other
    file (config, tokenizer, custom code) to ``other_files`` (bytes, sha256); hidden files, the
    manifest itself and the card and plot added later are not recorded.
    """
    from .streaming import read_safetensors_header

    folder = Path(directory)
    weights: dict[str, dict[str, Any]] = {}
    others: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or path.name in _UNHASHED or not path.is_file():
            continue
        entry: dict[str, Any] = {"bytes": path.stat().st_size, "sha256": file_sha256(path)}
        if path.suffix == ".safetensors":
            weights[path.name] = {"tensors": len(read_safetensors_header(path)[0]), **entry}
        else:
            others[path.name] = entry
    output = manifest.setdefault("output", {})
    output["files"] = weights
    output["other_files"] = others
    output["tensors"] = sum(f["tensors"] for f in weights.values())
    output["bytes"] = sum(f["bytes"] for f in weights.values())


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
