"""model_cards/ at the top of the repository is the single source of the card template(s)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from gqa_retrofit.hub.card import DEFAULT_TEMPLATE

ROOT = Path(__file__).resolve().parents[2]


def test_the_package_reads_the_top_level_template() -> None:
    assert DEFAULT_TEMPLATE.resolve() == (ROOT / "model_cards" / "default.md.jinja").resolve()
    link = ROOT / "src" / "gqa_retrofit" / "model_cards"
    assert link.is_symlink() and link.resolve() == (ROOT / "model_cards").resolve()


def test_the_wheel_carries_the_templates_as_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, tree / name)
    shutil.copytree(ROOT / "model_cards", tree / "model_cards")
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", tree / "src", symlinks=True, ignore=ignore)
    pip = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run(
        [*pip, "-w", str(tmp_path / "dist"), str(tree)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as archive:
        packaged = {n: archive.read(n) for n in archive.namelist() if "/model_cards/" in n}
    templates = sorted((ROOT / "model_cards").glob("*.jinja"))
    assert templates
    assert packaged == {f"gqa_retrofit/model_cards/{p.name}": p.read_bytes() for p in templates}
