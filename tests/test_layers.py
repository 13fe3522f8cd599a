"""The package's layers: every import in ``src/`` points down the map of docs/architecture.md.

The walk reads every ``import`` statement (module level, in functions, under ``TYPE_CHECKING``)
and every ``importlib.import_module("gqa_retrofit...")`` with a literal name, so a lazy import
cannot hide an upward edge. A unit is a sub-package (``arch``) or a top-level module
(``errors``); imports inside one unit are free. A unit may import only units on lower layers;
units on one layer are independent of each other.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = "gqa_retrofit"
SRC = Path(__file__).resolve().parents[1] / "src"

# Bottom first. Keep in step with the drawing in docs/architecture.md.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "_version", "_progress", "_markdown", "_lazy"),
    ("_fs", "devices", "sources", "assets", "data"),
    ("_options",),  # the options regime: parsers in the devices.py vocabulary
    ("_vocabulary",),  # option declarations shared by commands (data options, device, eval)
    ("arch",),
    ("cost", "patching"),
    ("conversion",),
    ("recipe", "training", "evaluation"),
    ("hub",),
    ("pipeline",),
    ("cli",),
    ("__init__",),  # the public API: lazy re-exports of everything below
]
RANK = {unit: rank for rank, units in enumerate(LAYERS) for unit in units}


def module_name(path: Path, src: Path) -> str:
    """``src/gqa_retrofit/arch/layout.py`` -> ``gqa_retrofit.arch.layout``."""
    parts = list(path.relative_to(src).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def unit_of(module: str) -> str:
    """The layer unit of a ``gqa_retrofit`` module: its sub-package or top-level module."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imported_modules(path: Path, src: Path) -> Iterator[tuple[str, int]]:
    """``(module, line)`` of every ``gqa_retrofit`` module that ``path`` imports."""
    module = module_name(path, src)
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _absolute(node, module, is_package)
            # ``from gqa_retrofit import x``: the unit x, or an attribute of the package's __init__
            names = [
                f"{target}.{a.name}" if target == PACKAGE and a.name in RANK else target
                for a in node.names
            ]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        for name in dict.fromkeys(names):
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                yield name, node.lineno


def layer_violations(src: Path) -> list[str]:
    """One line per import against the layer map (and per unit missing from it)."""
    problems: list[str] = []
    for path in sorted((src / PACKAGE).rglob("*.py")):
        module = module_name(path, src)
        unit = unit_of(module)
        if unit not in RANK:
            problems.append(f"{module}: unit {unit!r} is on no layer; add it to LAYERS")
            continue
        for target, line in imported_modules(path, src):
            other = unit_of(target)
            if other == unit or other not in RANK:
                continue
            if RANK[other] >= RANK[unit]:
                problems.append(
                    f"{module}:{line} imports {target}: {unit} (layer {RANK[unit]}) may not "
                    f"import {other} (layer {RANK[other]})"
                )
    return problems


def test_every_import_in_src_points_down_the_layer_map() -> None:
    assert layer_violations(SRC) == []


def test_every_unit_of_the_package_is_on_the_map() -> None:
    units = {unit_of(module_name(p, SRC)) for p in (SRC / PACKAGE).rglob("*.py")}
    assert units <= set(RANK), sorted(units - set(RANK))


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / PACKAGE / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("name", "text", "target"),
    [
        (
            "arch/layout.py",
            "from ..conversion.pooling import x\n",
            "gqa_retrofit.conversion.pooling",
        ),
        ("arch/__init__.py", "from ..conversion import pooling\n", "gqa_retrofit.conversion"),
        ("sources.py", "def f():\n    import gqa_retrofit.hub.push\n", "gqa_retrofit.hub.push"),
        ("cost/a.py", "def f():\n    from gqa_retrofit import patching\n", "gqa_retrofit.patching"),
        (
            "patching/a.py",
            "import importlib\nimportlib.import_module('gqa_retrofit.conversion')\n",
            "gqa_retrofit.conversion",
        ),
        ("errors.py", "from . import __version__\n", "gqa_retrofit"),
    ],
)
def test_an_upward_or_sideways_import_is_reported(
    tmp_path: Path, name: str, text: str, target: str
) -> None:
    src = _tree(tmp_path, {name: text})
    [problem] = layer_violations(src)
    assert f" imports {target}: " in problem


def test_downward_and_internal_imports_pass(tmp_path: Path) -> None:
    src = _tree(
        tmp_path,
        {
            "conversion/convert.py": "from ..arch import x\nfrom .pooling import y\n",
            "cli/main.py": "from .._version import __version__\nfrom ..pipeline import z\n",
        },
    )
    assert layer_violations(src) == []


def test_a_unit_missing_from_the_map_is_reported(tmp_path: Path) -> None:
    src = _tree(tmp_path, {"newpkg/__init__.py": ""})
    assert layer_violations(src) == [
        "gqa_retrofit.newpkg: unit 'newpkg' is on no layer; add it to LAYERS"
    ]
