"""The package's shape: no import cycle, and renderers that load no part of the runner."""

from __future__ import annotations

import ast
import os
import site
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO

PACKAGE = REPO / "noteexec"

RUNNER = ("noteexec.sandbox", "noteexec.cache", "noteexec.check", "noteexec.session", "sqlite3", "subprocess")


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _imported(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules ``module`` imports anywhere in it (in functions too, and under
    ``TYPE_CHECKING``: a type-only cycle still ties two modules' designs together).

    ``from noteexec.x import y`` is an edge to ``noteexec.x.y`` when that is a module, else to
    ``noteexec.x``. Parent packages a submodule's import runs are not edges: a package's
    ``__init__`` importing its own submodules would otherwise always close a cycle."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the module's package, one level up per extra dot
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base)
    return {name for name in found if name in modules and name != module}


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    return {module: _imported(module, path, modules) for module, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph``, as the modules along it, or None (an iterative depth-first search)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if start in state:
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            following = next(stack[-1], None)
            if following is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(following) == 1:
                return [*path[path.index(following) :], following]
            elif following not in state:
                state[following] = 1
                path.append(following)
                stack.append(iter(sorted(graph[following])))
    return None


def test_the_graph_sees_function_level_and_from_imports() -> None:
    graph = import_graph()
    assert "noteexec.parse" in graph["noteexec.check"]  # imported inside a function
    assert "noteexec.site.commands" in graph["noteexec.cli"]
    assert "noteexec.update" in graph["noteexec.cli"]  # from noteexec import update
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_cycle_in_the_package() -> None:
    assert _cycle(import_graph()) is None


def _imported_by(code: str) -> set[str]:
    """The modules a fresh interpreter has loaded after ``code``: without the site module, whose
    start-up hooks (.pth files) load modules of their own, but with the installed packages."""
    path = os.pathsep.join([str(REPO), *site.getsitepackages()])
    result = subprocess.run(
        [sys.executable, "-S", "-c", f"{code}\nimport sys\nprint(' '.join(sys.modules))"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": path},
        timeout=60,
        check=True,
    )
    return set(result.stdout.split())


def test_reporters_load_no_part_of_the_runner() -> None:
    loaded = _imported_by("import noteexec.report, noteexec.formats, noteexec.update, noteexec.baseline")
    assert "noteexec.results" in loaded
    assert loaded.isdisjoint({*RUNNER, "threading"})


def test_the_site_renderer_loads_no_part_of_the_runner() -> None:
    """(markdown-it imports logging, which imports threading: only the runner's are counted.)"""
    loaded = _imported_by("import noteexec.site.render, noteexec.site.page, noteexec.site.code")
    assert "noteexec.results" in loaded
    assert loaded.isdisjoint(RUNNER)
