"""Functions a newcomer can read: none in ``src/`` is longer than 120 lines (issue 19)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
MAX_LINES = 120
ALLOWED: frozenset[str] = frozenset()  # no exceptions: the converter is split (issue 19)


def long_functions(
    src: Path, limit: int = MAX_LINES, allowed: frozenset[str] | set[str] = frozenset()
) -> list[str]:
    """``path:line name (N lines)`` of every function or method longer than ``limit`` lines.

    A function's length runs from its ``def`` (decorators excluded) to its last line, nested
    functions included.
    """
    found = []
    for path in sorted(src.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > limit:
                    rel = path.relative_to(src).as_posix()
                    if f"{rel} {node.name}" not in allowed:
                        found.append(f"{rel}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_no_function_in_src_is_over_120_lines() -> None:
    assert long_functions(SRC, allowed=ALLOWED) == []


def test_a_long_function_is_reported(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_LINES))
    (tmp_path / "m.py").write_text(f"def short():\n    pass\n\n\ndef long():\n{body}")
    assert long_functions(tmp_path) == [f"m.py:5 long ({MAX_LINES + 1} lines)"]
