"""Bad input to the Python API ``convert_checkpoint``: the package's ConfigError family (exit 2
on the command line), one line naming the value, and nothing written (issue 15).

The CLI reads a config as ``estimate`` does before it calls the converter; a direct API call must
get the same answers, not a ZeroDivisionError, a dataclass error or a RuntimeError.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from gqa_retrofit.conversion.convert import convert_checkpoint
from gqa_retrofit.errors import ConfigError, GQARetrofitError
from tiny_models import save_tiny_model


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("src") / "llama", "llama")


def _with_config(source: Path, tmp_path: Path, **changes: Any) -> Path:
    bad = tmp_path / "bad"
    shutil.copytree(source, bad)
    config = json.loads((bad / "config.json").read_text(encoding="utf-8"))
    config.update(changes)
    (bad / "config.json").write_text(json.dumps(config), encoding="utf-8")
    return bad


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"num_attention_heads": 0}, "config field 'num_attention_heads' (number of attention "
         "heads) must be an integer >= 1, got 0"),  # was ZeroDivisionError
        ({"num_attention_heads": "eight"}, "config field 'num_attention_heads' (number of "
         "attention heads) must be an integer >= 1, got 'eight'"),  # was a dataclass error
        ({"head_dim": -1}, "config field 'head_dim' (head_dim) must be an integer >= 1, got -1"),
        ({"num_key_value_heads": 0}, "config field 'num_key_value_heads' (number of KV heads) "
         "must be an integer >= 1, got 0"),
        ({"num_hidden_layers": 0}, "config field 'num_hidden_layers' (number of layers) must be "
         "an integer >= 1, got 0"),  # was converted into an empty model
        ({"hidden_size": -5}, "config field 'hidden_size' (hidden size) must be an integer >= 1, "
         "got -5"),
    ],
)  # fmt: skip
def test_bad_source_configs(
    source: Path, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    bad = _with_config(source, tmp_path, **changes)
    with pytest.raises(ConfigError) as err:
        convert_checkpoint(bad, tmp_path / "out", kv_heads=1)
    assert str(err.value) == message
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"kv_heads": 0}, "kv_heads=0 is invalid: must be an integer >= 1"),
        ({"kv_heads": "one"}, "kv_heads='one' is invalid: must be an integer >= 1"),  # TypeError
        ({"kv_heads": 1.5}, "kv_heads=1.5 is invalid: must be an integer >= 1"),  # was accepted
        ({"kv_heads": True}, "kv_heads=True is invalid: must be an integer >= 1"),
        ({"kv_heads": 1, "heads": "four"}, "heads='four' is invalid: must be an integer >= 1"),
        ({"kv_heads": 1, "calibration_tokens": "many"},
         "calibration_tokens='many' is invalid: must be an integer >= 1"),
        ({"kv_heads": 1, "device": "tpu"}, "unknown device 'tpu': valid are auto, cpu, cuda, "
         "cuda:N, mps (available here: "),  # was ignored by weight-only methods
        ({"kv_heads": 1, "base_model": "no id"},
         "base model 'no id' is not a Hub model id (owner/name)"),
    ],
)  # fmt: skip
def test_bad_arguments(source: Path, tmp_path: Path, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(GQARetrofitError) as err:
        convert_checkpoint(source, tmp_path / "out", **kwargs)
    assert isinstance(err.value, ConfigError) and err.value.exit_code == 2
    assert str(err.value).startswith(message)
    assert not (tmp_path / "out").exists()
