"""Training checkpoints in OUT: atomic, safe to load, enough to continue a run exactly.

Layout of OUT while training::

    OUT/training_state.json          marker + pointer to the newest checkpoint (atomic JSON)
    OUT/metrics.jsonl                one JSON object per step / evaluation
    OUT/checkpoints/step-000040/     model.safetensors (full student state, incl. LoRA)
                                     optimizer.pt      (tensors and numbers only:
                                                        loaded with weights_only=True)
                                     rng-<rank>.safetensors  (torch RNG state per process)
                                     state.json        (step, tokens, losses, data position)

A checkpoint directory is written under a temporary name and renamed when complete, and the
marker is updated after the rename, so a kill at any moment leaves the previous checkpoint
usable. Sharded runs (FSDP, DeepSpeed) store model and optimizer with ``accelerator.save_state``
in ``accelerate/`` inside the checkpoint instead.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from .._fs import portable_paths, write_json_atomic
from ..errors import TrainingError

MARKER = "training_state.json"
FORMAT = "gqa-retrofit-training"
STATE = "state.json"


def read_marker(out: Path) -> dict[str, Any] | None:
    """The run marker of ``out``, or None when ``out`` holds no gqa-retrofit training run."""
    path = out / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None
    return data


def write_marker(out: Path, data: dict[str, Any]) -> None:
    """Write the run marker; local absolute paths in it are recorded relative to ``out``."""
    write_json_atomic(out / MARKER, {"format": FORMAT, **portable_paths(data, out)})


def exported_use_cache(model_dir: Path) -> bool:
    """``use_cache`` for the exported model: the source config's value (default True).

    Training sets it to False on the live model; the published checkpoint must not keep that,
    or ``generate`` would recompute the whole prefix for every new token.
    """
    try:
        config = json.loads((Path(model_dir) / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return True
    value = config.get("use_cache", True) if isinstance(config, dict) else True
    return value is not False


def checkpoint_name(step: int) -> str:
    return f"step-{step:06d}"


def read_checkpoint_state(ckpt: Path) -> dict[str, Any]:
    """The ``state.json`` of a checkpoint directory.

    Raises:
        TrainingError: ``ckpt`` is not a complete gqa-retrofit training checkpoint.
    """
    path = ckpt / STATE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        raise TrainingError(
            f"resume directory {str(ckpt)!r} is not a training checkpoint (no readable "
            f"{STATE}); pass --resume latest or a OUT/checkpoints/step-N directory"
        ) from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "step" not in data:
        raise TrainingError(
            f"resume directory {str(ckpt)!r} is not a gqa-retrofit training checkpoint"
        )
    return data


def resolve_resume(out: Path, resume: str) -> Path:
    """The checkpoint directory that ``--resume`` names.

    Raises:
        TrainingError: ``latest`` with no checkpoint in OUT, or a path that is not a checkpoint.
    """
    if resume == "latest":
        marker = read_marker(out)
        if marker is None or not marker.get("latest_checkpoint"):
            raise TrainingError(
                f"--resume latest: {str(out)!r} holds no training checkpoint to continue from"
            )
        ckpt = out / marker["latest_checkpoint"]
    else:
        ckpt = Path(resume)
    if not ckpt.is_dir():
        raise TrainingError(f"resume directory {str(ckpt)!r} does not exist")
    read_checkpoint_state(ckpt)
    return ckpt


def save_rng(path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = state
    save_file(tensors, str(path))


def load_rng(path: Path) -> None:
    from safetensors.torch import load_file

    if not path.is_file():
        return
    tensors = load_file(str(path))
    torch.set_rng_state(tensors["cpu"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("cuda")]
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


def save_checkpoint(
    out: Path,
    step: int,
    *,
    accelerator: Any,
    model: Any,
    optimizer: Any,
    state: dict[str, Any],
    sharded: bool,
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically (all processes call this) and return its path."""
    from safetensors.torch import save_file

    root = out / "checkpoints"
    final = root / checkpoint_name(step)
    tmp = root / f".{checkpoint_name(step)}.tmp"
    if accelerator.is_main_process:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    accelerator.wait_for_everyone()
    if sharded:
        accelerator.save_state(str(tmp / "accelerate"))
    else:
        state_dict = accelerator.get_state_dict(model)
        if accelerator.is_main_process:
            tensors = {k: v.detach().contiguous().cpu() for k, v in state_dict.items()}
            save_file(_untie(tensors), str(tmp / "model.safetensors"), metadata={"format": "pt"})
            torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    save_rng(tmp / f"rng-{accelerator.process_index}.safetensors")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        write_json_atomic(tmp / STATE, {"format": FORMAT, **state})
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
        _prune(root, keep)
    accelerator.wait_for_everyone()
    return final


def _untie(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses shared storage: clone tensors that share memory with an earlier one."""
    seen: set[int] = set()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        ptr = tensor.untyped_storage().data_ptr()
        out[name] = tensor.clone() if ptr in seen else tensor
        seen.add(ptr)
    return out


def _prune(root: Path, keep: int) -> None:
    done = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("step-"))
    for old in done[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def load_checkpoint(
    ckpt: Path,
    *,
    accelerator: Any,
    model: Any,
    optimizer: Any,
    sharded: bool,
) -> dict[str, Any]:
    """Restore model, optimizer and this process's RNG from ``ckpt``; return its state."""
    from safetensors.torch import load_file

    state = read_checkpoint_state(ckpt)
    if sharded:
        accelerator.load_state(str(ckpt / "accelerate"))
    else:
        tensors = load_file(str(ckpt / "model.safetensors"))
        target = accelerator.unwrap_model(model)
        missing, unexpected = target.load_state_dict(tensors, strict=False)
        real_missing = [k for k in missing if k not in _tied_names(target)]
        if real_missing or unexpected:
            raise TrainingError(
                f"checkpoint {str(ckpt)!r} does not match this model (missing "
                f"{len(real_missing)}, unexpected {len(unexpected)} tensors): resume with the "
                "same MODEL and --trainable"
            )
        optim_state = torch.load(ckpt / "optimizer.pt", map_location="cpu", weights_only=True)
        optimizer.load_state_dict(optim_state)
    load_rng(ckpt / f"rng-{accelerator.process_index}.safetensors")
    return state


def _tied_names(model: Any) -> set[str]:
    keys = getattr(model, "_tied_weights_keys", None) or {}
    return set(keys)  # a list (v4) or a {target: source} dict (v5): the names either way
