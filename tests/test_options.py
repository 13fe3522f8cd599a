"""The shared option loaders behind ``train --config`` and ``retrofit --config``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pytest

from gqa_retrofit._options import options_from_mapping, read_config_file
from gqa_retrofit.errors import ConfigError


@dataclass
class _Opts:
    steps: int = 1
    data: list[str] = field(default_factory=list)


def test_mapping_keys_with_dashes_and_scalar_lists() -> None:
    opts = options_from_mapping(
        _Opts, {"steps": 3, "data": "a.txt"}, label="demo", error=ConfigError, list_fields=["data"]
    )
    assert opts == _Opts(steps=3, data=["a.txt"])


def test_unknown_key_names_the_valid_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown demo option 'step'; valid: data, steps"):
        options_from_mapping(_Opts, {"step": 3}, label="demo", error=ConfigError)


def test_yaml_json_and_bad_files(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("steps: 4\ndata-files: [x]\n")
    assert read_config_file(tmp_path / "a.yaml", error=ConfigError) == {
        "steps": 4,
        "data-files": ["x"],
    }
    (tmp_path / "b.json").write_text('{"steps": 5}')
    assert read_config_file(tmp_path / "b.json", error=ConfigError) == {"steps": 5}
    (tmp_path / "empty.yaml").write_text("")
    assert read_config_file(tmp_path / "empty.yaml", error=ConfigError) == {}
    (tmp_path / "list.yaml").write_text("- 1\n")
    with pytest.raises(ConfigError, match="must hold a mapping"):
        read_config_file(tmp_path / "list.yaml", error=ConfigError)
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="cannot be parsed"):
        read_config_file(tmp_path / "bad.json", error=ConfigError)
    with pytest.raises(ConfigError, match="does not exist"):
        read_config_file(tmp_path / "missing.yaml", error=ConfigError)
