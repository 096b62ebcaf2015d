"""No import circles in the package: no two modules import each other, directly or through others.

Every ``import waveflow_py...`` / ``from waveflow_py... import ...`` counts, wherever it sits (module top,
inside a function, under ``TYPE_CHECKING``): a lazy import hides a circle from the interpreter, not from
the design. ``from pkg import name`` is an edge to the submodule ``pkg.name`` when one exists, else to
``pkg`` (its ``__init__``). The graph's strongly connected components of more than one module are the
circles.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def module_files(root: Path, package: str) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` under ``root / package``."""
    mods = {}
    for f in sorted((root / package).rglob("*.py")):
        parts = list(f.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = f
    return mods


def import_graph(root: Path, package: str) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (anywhere in its source)."""
    mods = module_files(root, package)

    def resolve(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        edges: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                edges |= {resolve(a.name) for a in node.names if a.name.split(".")[0] == package}
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                raise AssertionError(f"{path}: relative import (the package uses absolute imports)")
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == package:
                module = str(node.module)
                for a in node.names:
                    sub = f"{module}.{a.name}"
                    edges.add(sub if sub in mods else resolve(module))
        graph[name] = {e for e in edges if e is not None and e != name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            v, children = work[-1]
            w = next(children, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = len(index)
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = set()
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.add(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    found.append(comp)
    return found


def test_no_module_imports_another_that_imports_it_back() -> None:
    graph = import_graph(ROOT, "waveflow_py")
    assert graph["waveflow_py.nn.wavenet2d"] >= {"waveflow_py.nn.wavenet2d_step"}  # the graph is read
    found = circles(graph)
    assert not found, f"import circles (make each one-way): {[sorted(c) for c in found]}"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = tmp_path / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_finds_direct_lazy_and_type_checking_circles(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "__init__.py": "",
            "a.py": "from pkg.b import f\n",
            "b.py": "def f():\n    from pkg import a\n",  # lazy import inside a function
            "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.d.e\n",
            "d/__init__.py": "",
            "d/e.py": "from pkg.d import f\n",
            "d/f.py": "from pkg.c import x\n",  # c -> d.e -> d.f -> c: a three-module circle
            "g.py": "import pkg.a\nimport os\n",  # imports into a circle, is not part of it
        },
    )
    found = circles(import_graph(root, "pkg"))
    assert sorted(sorted(c) for c in found) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d.e", "pkg.d.f"]]


def test_a_one_way_package_has_no_circles(tmp_path: Path) -> None:
    root = _package(
        tmp_path, {"__init__.py": "from pkg.a import f\n", "a.py": "from pkg.b import g\n", "b.py": ""}
    )
    assert circles(import_graph(root, "pkg")) == []
