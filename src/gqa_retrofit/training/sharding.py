"""Where the frozen teacher lives: on the device beside the student, or sharded like it.

Under FSDP2 the student is sharded by ``accelerator.prepare`` (accelerate prepares only one
model per FSDP2 run), so the teacher is sharded here with the same public API,
``torch.distributed.fsdp.fully_shard``: each decoder layer is one unit (its weights are gathered
for its forward and freed after), then the root. Each process then holds 1/N of the teacher.
Under DDP, FSDP1 and DeepSpeed the whole teacher is moved to each process's device.
"""

from __future__ import annotations

from typing import Any

from torch import nn


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The modules of ``model`` whose class transformers marks as not to be split (the decoder
    layers: ``LlamaDecoderLayer``, ...)."""
    names = set(getattr(model, "_no_split_modules", None) or [])
    return [m for m in model.modules() if type(m).__name__ in names]


def place_teacher(teacher: nn.Module, accelerator: Any) -> nn.Module:
    """The teacher, ready to run on this process: sharded under FSDP2, else on its device."""
    if getattr(accelerator, "is_fsdp2", False):
        from torch.distributed.fsdp import fully_shard

        # layer by layer: each unit moves to the device and is cut into shards before the next,
        # so no process ever holds the whole teacher
        for layer in decoder_layers(teacher):
            fully_shard(layer)
        fully_shard(teacher)
        return teacher
    return teacher.to(accelerator.device)
