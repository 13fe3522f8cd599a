"""Run by test_sharding.py under torchrun (2 processes, gloo): shard a tiny teacher with FSDP2
exactly as training does, and check it against the same model unsharded."""

from __future__ import annotations

import json
import sys
from types import SimpleNamespace

import torch
import torch.distributed as dist

from gqa_retrofit.training.sharding import place_teacher
from tiny_models import tiny_model

dist.init_process_group("gloo")
rank = dist.get_rank()
full = tiny_model("llama", num_hidden_layers=2).requires_grad_(False)
teacher = tiny_model("llama", num_hidden_layers=2).requires_grad_(False)  # same seed: same weights
ids = torch.randint(0, 128, (2, 16), generator=torch.Generator().manual_seed(rank))
with torch.no_grad():
    expected = full(input_ids=ids).logits
sharded = place_teacher(teacher, SimpleNamespace(is_fsdp2=True, device=torch.device("cpu")))
with torch.no_grad():
    sharded(input_ids=ids)  # every training step runs it again: after a reshard
    got = sharded(input_ids=ids).logits
local = sum(p.to_local().numel() for p in sharded.parameters())
total = sum(p.numel() for p in full.parameters())
row = {
    "rank": rank,
    "max_abs_diff": float((got - expected).abs().max()),
    "local_params": local,
    "total_params": total,
    "param_type": type(next(sharded.parameters())).__name__,
}
# One write per line (shorter than PIPE_BUF, so atomic): both ranks share the pipe, and print()
# writes the text and its newline separately, which lets the two results run together.
sys.stdout.write(json.dumps(row) + "\n")
sys.stdout.flush()
dist.destroy_process_group()
