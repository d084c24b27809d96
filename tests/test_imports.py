"""Package boundaries, read from the source: no import cycle inside a package, and across packages only
`fb_schema` or another package's public top-level names (never its private modules)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT

PACKAGES = sorted(p for src in ROOT.glob("packages/*/src") for p in src.iterdir() if (p / "__init__.py").exists())
NAMES = {p.name for p in PACKAGES}


def _module_name(pkg: Path, file: Path) -> str:
    parts = file.relative_to(pkg.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(file: Path, module: str) -> set[str]:
    """Every module `file` imports, at any depth (function-level imports are cycles too), made absolute."""
    out: set[str] = set()
    is_pkg = file.name == "__init__.py"
    for node in ast.walk(ast.parse(file.read_text(), str(file))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_pkg else 0)]
                base = ".".join(anchor + ([base] if base else []))
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def _graph(pkg: Path) -> dict[str, set[str]]:
    files = {_module_name(pkg, f): f for f in pkg.rglob("*.py")}
    return {name: {m for m in _imports(f, name) if m in files and m != name} for name, f in files.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as a path, or None (depth-first search with colours)."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            # A package's __init__ importing its own submodules is how Python packages work, not a cycle.
            if nxt == node.rsplit(".", 1)[0]:
                continue
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.name)
def test_no_import_cycle(pkg):
    cycle = _cycle(_graph(pkg))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


@pytest.mark.parametrize("pkg", PACKAGES, ids=lambda p: p.name)
def test_cross_package_imports_are_public(pkg):
    bad = []
    for file in pkg.rglob("*.py"):
        for name in _imports(file, _module_name(pkg, file)):
            top, _, rest = name.partition(".")
            if top in NAMES and top != pkg.name and top != "fb_schema" and rest.startswith("_"):
                bad.append(f"{file.relative_to(ROOT)}: {name}")
    assert not bad, "private cross-package imports: " + "; ".join(sorted(bad))


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None
