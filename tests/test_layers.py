"""The import structure of shared/DESIGN.md: layers whose imports point down, no circles.

``lint-imports`` (import-linter) checks the contracts in pyproject.toml; the cycle test builds
the import graph itself from the sources (every import statement, function-level ones too),
so a circle inside one package is caught as well.
"""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import napari_tower

REPO = Path(__file__).resolve().parents[1]
PACKAGE = Path(napari_tower.__file__).resolve().parent  # the code under test (src/ or an install)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """{module: modules of the package it imports}, from every import statement in its source."""
    root = package.name
    files = {}
    for p in package.rglob("*.py"):
        parts = list(p.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        files[".".join(parts)] = p
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        out = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                    name = ".".join(base + ([node.module] if node.module else []))
                else:
                    name = node.module or ""
                names = [name] + [f"{name}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            # the most specific module named; a package's __init__ counts only when imported itself
            found = [n for n in names if n in files and n != mod]
            out.update(n for n in found if not any(o != n and o.startswith(n + ".") for o in found) or n == name)
        graph[mod] = {m for m in out if m.startswith(root)}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def _without_parents(graph):
    """Edges into the package root (``napari_tower``, whose __init__ re-exports the API) count
    as edges into the API; a package's __init__ importing its own children is no circle."""
    return {m: {d for d in deps if not m.startswith(d + ".")} for m, deps in graph.items()}


def test_the_graph_sees_imports_inside_functions():
    graph = import_graph()
    # cli.py imports the API inside its command functions only: the graph must still have it
    assert "napari_tower.api" in graph["napari_tower.cli"]
    assert "napari_tower.model.archive" in graph["napari_tower.model.weights"]


def test_the_cycle_finder_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles():
    found = cycles(_without_parents(import_graph()))
    assert found == [], f"import circles: {found}"


def test_import_layer_contracts():
    """import-linter's layers and independence contracts in pyproject.toml, on this code."""
    pytest.importorskip("importlinter", reason="import-linter is a testing dependency: pip install '.[testing]'")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    assert exe, "lint-imports not found beside this Python"
    env = {**os.environ, "PYTHONPATH": str(PACKAGE.parent) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    run = subprocess.run([exe, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert "0 broken" in run.stdout
