"""Fixtures of the Hub tests: a converted tiny checkpoint with its manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

EVALUATIONS = [
    {"model": "source", "dataset": "persuasion", "metric": "perplexity", "value": 36.6},
    {"model": "converted", "dataset": "persuasion", "metric": "perplexity", "value": 78.7},
]


def make_converted(tmp_path: Path, name: str = "tiny-gqa") -> Path:
    """A tiny llama checkpoint converted 2 -> 1 KV heads, with manifest and evaluations."""
    from tiny_models import save_tiny_model

    out = save_tiny_model(tmp_path / name, "llama", num_key_value_heads=1)
    manifest = {
        "format": "gqa-retrofit-conversion",
        "format_version": 1,
        "source": {"name": "tester/tiny-llama", "revision": None},
        "method": {"name": "mean"},
        "heads": {
            "before": {"heads": 4, "kv_heads": 2, "head_dim": 16},
            "after": {"heads": 4, "kv_heads": 1, "head_dim": 16},
        },
        "timings": {"total": 0.5},
        "evaluations": EVALUATIONS,
    }
    (out / "gqa_retrofit.json").write_text(json.dumps(manifest, indent=2))
    return out


@pytest.fixture
def converted_dir(tmp_path: Path) -> Path:
    return make_converted(tmp_path)
