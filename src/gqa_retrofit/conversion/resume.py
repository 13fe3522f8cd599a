"""Resuming a calibrated conversion at the layer where it stopped.

A data-aware conversion of a large model spends minutes to hours walking the decoder layers.
While it runs, a state directory beside OUT (``.OUT.gqa-resume/``, outside the temporary
output that an interrupted run loses) keeps:

- ``layer-NNNNN.safetensors``: the converted attention tensors of each finished layer, exactly
  as they are written to the output;
- ``streams.safetensors``: both calibration residual streams entering the next layer
  (:meth:`~gqa_retrofit.conversion.calibration.CalibrationSession.save_streams`), rewritten at
  most every :data:`STREAMS_EVERY_SECONDS`;
- ``state.json``: what the run converts (source fingerprint, method, head targets, calibration
  token fingerprint, output dtype) and the layer the streams enter, with the finished layers'
  manifest records.

Running the same conversion again continues at that layer: earlier layers come from their saved
tensors (the shards are still rewritten from the start, which streams at disk speed). A run with
other settings starts afresh. The directory is removed when the conversion completes.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch

from .._fs import write_json_atomic
from .._progress import is_quiet, progress
from .layer_errors import describe_errors, layer_error

#: Least seconds between two saves of the calibration streams (they are the large part).
STREAMS_EVERY_SECONDS = 60.0
STATE = "state.json"
STREAMS = "streams.safetensors"


def resume_dir(out: str | os.PathLike[str]) -> Path:
    """Where the resume state of a conversion into ``out`` lives."""
    out = Path(out)
    return out.parent / f".{out.name}.gqa-resume"


class CalibrationResume:
    """The resume state of one calibrated conversion (see the module docstring).

    Args:
        out: the conversion's output directory.
        key: everything that must match for saved layers to be reused.
    """

    def __init__(self, out: str | os.PathLike[str], key: dict[str, Any]) -> None:
        self.dir = resume_dir(out)
        self.key = key
        self.records: list[dict[str, Any]] = []
        self.start_layer = 0
        self._restored = False
        self._last_save = time.monotonic()
        state = self._read_state()
        if state is not None and state.get("key") == key:
            self.start_layer = int(state["next_layer"])
            self.records = list(state["records"])[: self.start_layer]
            if self.start_layer and not is_quiet():
                print(
                    f"gqa-retrofit convert: resuming the calibrated conversion at layer "
                    f"{self.start_layer} (layers 0-{self.start_layer - 1} saved in "
                    f"{self.dir.name})",
                    file=sys.stderr,
                )
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True, exist_ok=True)

    def _read_state(self) -> dict[str, Any] | None:
        try:
            state = json.loads((self.dir / STATE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(state, dict) or not (self.dir / STREAMS).is_file():
            return None
        return state

    def saved(self, layer: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]] | None:
        """The converted tensors and manifest record of ``layer`` when it was finished before."""
        if layer >= self.start_layer:
            return None
        from safetensors.torch import load_file

        return load_file(str(self.dir / f"layer-{layer:05d}.safetensors")), self.records[layer]

    def restore(self, session: Any) -> None:
        """Put ``session``'s streams where the previous run left them (once, before its first
        layer)."""
        if self._restored:
            return
        self._restored = True
        if self.start_layer:
            session.restore_streams(self.dir / STREAMS)

    def layer_done(
        self, layer: int, tensors: dict[str, torch.Tensor], record: dict[str, Any], session: Any
    ) -> None:
        """Keep ``layer``'s result; save the streams when :data:`STREAMS_EVERY_SECONDS` passed."""
        from safetensors.torch import save_file

        name = f"layer-{layer:05d}.safetensors"
        save_file({k: v.contiguous() for k, v in tensors.items()}, str(self.dir / f".{name}"))
        (self.dir / f".{name}").replace(self.dir / name)
        self.records = [*self.records[:layer], record]
        due = time.monotonic() - self._last_save >= STREAMS_EVERY_SECONDS
        if due and layer + 1 < session.num_layers:
            session.save_streams(self.dir / STREAMS)
            write_json_atomic(
                self.dir / STATE,
                {"key": self.key, "next_layer": session.next_layer, "records": self.records},
            )
            self._last_save = time.monotonic()

    def finish(self) -> None:
        """The conversion is complete: drop the state."""
        shutil.rmtree(self.dir, ignore_errors=True)


class LayerProgress:
    """Progress of a calibrated conversion in decoder layers, with each layer's reconstruction
    error; a summary line on stderr after the last layer (all silenced by ``--quiet``)."""

    def __init__(self, layers: int, *, start: int = 0) -> None:
        self.layers = layers
        self.errors: dict[int, float] = {}
        self.bar = progress(total=layers, initial=start, desc="layers", unit="layer")

    def done(self, layer: int, record: dict[str, Any]) -> None:
        error = layer_error(record)
        if error is not None:
            self.errors[layer] = error
            self.bar.set_postfix(layer=layer, error=f"{error:.4f}", refresh=False)
        self.bar.update(1)
        if layer == self.layers - 1:
            self.bar.close()
            if self.errors and not is_quiet():
                print(f"gqa-retrofit convert: {describe_errors(self.errors)}", file=sys.stderr)
