"""The evaluation package's modules import each other one way only (no import circles)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "waveflow_py" / "evaluation"  # read, not imported
PREFIX = "waveflow_py.evaluation."


def _imports(path: Path) -> set[str]:
    """Sibling modules ``path`` imports anywhere (top level or inside functions)."""
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PREFIX):
            out.add(node.module.removeprefix(PREFIX).split(".")[0])
        elif isinstance(node, ast.Import):
            out |= {
                a.name.removeprefix(PREFIX).split(".")[0] for a in node.names if a.name.startswith(PREFIX)
            }
    return out


def test_no_two_evaluation_modules_import_each_other() -> None:
    graph = {p.stem: _imports(p) for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert graph["runner"] >= {"report", "results"}  # the graph is read (not empty)
    circles = sorted((a, b) for a, deps in graph.items() for b in deps if a < b and a in graph.get(b, ()))
    assert circles == []
