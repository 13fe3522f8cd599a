"""Check a converted checkpoint against its manifest, its config and itself.

:func:`verify_checkpoint` (``gqa-retrofit verify OUT``) runs, in order:

1. ``manifest``: ``gqa_retrofit.json`` is present and lists exactly the weight files on disk,
   with their sizes and tensor counts;
   ``hashes``: every file the manifest hashed (weights, config, tokenizer, code) still has that
   SHA-256, streamed file by file (a flipped byte anywhere fails it);
2. ``shards``: every shard header parses, no shard is truncated, the index points only at
   tensors its shards hold;
3. ``config``: the config's head counts equal the manifest's ``heads.after``;
4. ``shapes``: the tensors are exactly those of the model the config describes (built on the
   meta device), with the same shapes (a tied output head may be absent);
5. ``finite``: no NaN or Inf in any floating-point tensor (streamed in chunks);
6. ``forward``: the model loads with ``from_pretrained`` and a short forward gives finite logits
   of the expected shape (skipped with ``load=False``).

Every check runs even when an earlier one fails (unless it cannot: no shards, no forward), so
the report lists all problems at once.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..errors import ConversionError, GQARetrofitError
from .manifest import file_sha256, read_manifest
from .streaming import INDEX_NAME, CheckpointReader

_SCAN_CHUNK = 16 * 1024**2  # bytes per NaN/Inf scan step


@dataclass
class VerifyCheck:
    name: str
    ok: bool
    detail: str


@dataclass
class VerifyReport:
    """Outcome of :func:`verify_checkpoint`; ``ok`` is true when every check passed."""

    directory: Path
    checks: list[VerifyCheck] = field(default_factory=list)
    tensors: int = 0
    bytes: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def problems(self) -> list[str]:
        return [f"{c.name}: {c.detail}" for c in self.checks if not c.ok]

    def add(self, name: str, problems: list[str], ok_detail: str) -> None:
        """Record check ``name``: failed with (at most three of) ``problems``, else passed."""
        if problems:
            more = f" (+{len(problems) - 3} more)" if len(problems) > 3 else ""
            self.checks.append(VerifyCheck(name, False, "; ".join(problems[:3]) + more))
        else:
            self.checks.append(VerifyCheck(name, True, ok_detail))

    def to_dict(self) -> dict[str, Any]:
        return {
            "directory": str(self.directory),
            "ok": self.ok,
            "tensors": self.tensors,
            "bytes": self.bytes,
            "seconds": round(self.seconds, 3),
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in self.checks],
        }


def _check_manifest_files(directory: Path, manifest: dict[str, Any]) -> list[str]:
    problems = []
    listed: dict[str, dict[str, int]] = manifest.get("output", {}).get("files", {})
    on_disk = {p.name for p in directory.glob("*.safetensors")}
    for name, entry in listed.items():
        path = directory / name
        if not path.is_file():
            problems.append(f"{name} is listed but missing")
        elif path.stat().st_size != entry.get("bytes"):
            problems.append(
                f"{name} has {path.stat().st_size} bytes, the manifest says {entry.get('bytes')}"
            )
    for name in sorted(on_disk - set(listed)):
        problems.append(f"{name} is not listed in the manifest")
    return problems


def _expected_parameters(config: Any) -> tuple[dict[str, tuple[int, ...]], set[str]]:
    """Parameter shapes of the model ``config`` describes, and the names tying may omit."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)
    shapes = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    tie = getattr(config.get_text_config(), "tie_word_embeddings", False)
    tied_keys = getattr(model, "_tied_weights_keys", None) or {}
    return shapes, (set(tied_keys) if tie else set())


def _nonfinite(reader: CheckpointReader, name: str) -> bool:
    info = reader.info(name)
    if not info.dtype.is_floating_point or info.numel == 0:
        return False
    if not info.shape:
        return not bool(torch.isfinite(reader.read(name)).all())
    row_bytes = max(1, math.prod(info.shape[1:]) * info.dtype.itemsize)
    step = max(1, _SCAN_CHUNK // row_bytes)
    for start in range(0, info.shape[0], step):
        rows = reader.read_rows(name, start, start + step, scratch=True)
        if not bool(torch.isfinite(rows.float() if rows.dtype.itemsize < 2 else rows).all()):
            return True
    return False


def _heads_of(config: Any) -> dict[str, int]:
    from ..arch import get_family
    from ..arch.layout import attention_geometry

    return attention_geometry(get_family(str(config.model_type)), config).heads_dict()


def verify_checkpoint(
    directory: str | os.PathLike[str], *, load: bool = True, forward_tokens: int = 8
) -> VerifyReport:
    """Verify the checkpoint written by ``convert_checkpoint`` in ``directory``.

    Args:
        directory: a directory written by :func:`~gqa_retrofit.conversion.convert_checkpoint`.
        load: also load the model and run a short forward pass.
        forward_tokens: sequence length of that forward pass.

    Returns:
        A :class:`VerifyReport`; ``report.ok`` tells whether every check passed.

    Raises:
        ConversionError: ``directory`` does not exist or has no readable manifest.
    """
    started = time.perf_counter()
    path = Path(directory)
    if not path.is_dir():
        raise ConversionError(f"{str(directory)!r} is not a directory")
    manifest = read_manifest(path)
    report = VerifyReport(path)
    report.add(
        "manifest",
        _check_manifest_files(path, manifest),
        f"{len(manifest['output']['files'])} weight file(s) as listed",
    )
    report.add(*_check_hashes(path, manifest))
    reader = _open_shards(path, manifest, report)

    from transformers import AutoConfig

    import gqa_retrofit.patching  # noqa: F401  (registers the custom GQA model types)

    config = AutoConfig.from_pretrained(path)
    report.add(*_check_config(config, manifest))
    if reader is not None:
        with reader:
            report.add(*_check_shapes(reader, config))
            bad = [name for name in reader.names() if _nonfinite(reader, name)]
            report.add("finite", [f"{name} has NaN or Inf" for name in bad], "no NaN/Inf")
    if load:
        report.add("forward", _forward_problems(path, config, forward_tokens), "")
        if report.checks[-1].ok:
            report.checks[-1].detail = f"loaded; logits finite on {forward_tokens} tokens"
    report.seconds = time.perf_counter() - started
    return report


def _check_hashes(path: Path, manifest: dict[str, Any]) -> tuple[str, list[str], str]:
    """Every file the manifest hashed has the same SHA-256 now (streamed, file by file)."""
    output = manifest.get("output", {})
    recorded = {
        name: entry.get("sha256")
        for group in ("files", "other_files")
        for name, entry in (output.get(group) or {}).items()
        if isinstance(entry, dict) and entry.get("sha256")
    }
    if not recorded:
        return "hashes", [], "no content hashes recorded (a manifest of an older gqa-retrofit)"
    problems = []
    for name, sha in sorted(recorded.items()):
        file = path / name
        if not file.is_file():
            problems.append(f"{name} is hashed in the manifest but missing")
        elif file_sha256(file) != sha:
            problems.append(
                f"{name} differs from the manifest (SHA-256 mismatch: changed or corrupt)"
            )
    return "hashes", problems, f"{len(recorded)} file(s) match their SHA-256"


def _open_shards(
    path: Path, manifest: dict[str, Any], report: VerifyReport
) -> CheckpointReader | None:
    """The shard reader (None when the shards cannot be read), with the ``shards`` check."""
    try:
        reader = CheckpointReader(path)
    except GQARetrofitError as err:
        report.add("shards", [str(err)], "")
        return None
    report.tensors = len(reader.names())
    report.bytes = reader.total_bytes
    expected = manifest["output"].get("tensors")
    problems = (
        []
        if report.tensors == expected
        else [f"{report.tensors} tensors, the manifest says {expected}"]
    )
    via = f" through {INDEX_NAME}" if reader.index_path else ""
    report.add("shards", problems, f"{report.tensors} tensors readable{via}")
    return reader


def _check_config(config: Any, manifest: dict[str, Any]) -> tuple[str, list[str], str]:
    """The config's head counts are the manifest's ``heads.after``."""
    after = manifest.get("heads", {}).get("after", {})
    try:
        actual = _heads_of(config)
        diff = [
            f"{k}={actual[k]} in config.json, {after.get(k)} in the manifest"
            for k in ("heads", "kv_heads", "head_dim")
            if actual[k] != after.get(k)
        ]
    except GQARetrofitError as err:
        diff = [str(err)]
    return "config", diff, ", ".join(f"{k}={v}" for k, v in after.items())


def _check_shapes(reader: CheckpointReader, config: Any) -> tuple[str, list[str], str]:
    """The tensors are exactly the parameters of the model ``config`` describes."""
    expected, tied = _expected_parameters(config)
    problems = []
    for name, shape in expected.items():
        if name not in reader:
            if name not in tied:
                problems.append(f"{name} missing")
        elif reader.info(name).shape != shape:
            problems.append(
                f"{name} has shape {list(reader.info(name).shape)}, the config needs {list(shape)}"
            )
    problems += [
        f"{name} is not a parameter of the model" for name in reader.names() if name not in expected
    ]
    return "shapes", problems, f"{len(expected)} parameters match the config"


def _forward_problems(path: Path, config: Any, tokens: int) -> list[str]:
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from .._progress import is_quiet

    if is_quiet():  # --quiet also silences transformers' weight-loading bar
        hf_logging.disable_progress_bar()
    try:
        model = AutoModelForCausalLM.from_pretrained(path)
    except Exception as err:  # reported as a failed check
        return [f"from_pretrained failed: {type(err).__name__}: {str(err).splitlines()[0]}"]
    vocab = int(getattr(config.get_text_config(), "vocab_size", 2) or 2)
    ids = (torch.arange(tokens) * 7 % vocab).unsqueeze(0)
    with torch.no_grad():
        logits = model(input_ids=ids).logits
    problems = []
    if tuple(logits.shape) != (1, tokens, vocab):
        problems.append(f"logits shape {list(logits.shape)}, expected {[1, tokens, vocab]}")
    if not bool(torch.isfinite(logits).all()):
        problems.append("logits contain NaN or Inf")
    return problems
