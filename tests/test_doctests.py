"""Run the docstring examples of every package module (the optax convention: examples that execute)."""

import doctest
import importlib
import pkgutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _modules():
    for src in sorted(ROOT.glob("packages/*/src")):
        for pkg in sorted(p for p in src.iterdir() if (p / "__init__.py").exists()):
            try:
                importlib.import_module(pkg.name)
            except ImportError:
                continue  # a package whose optional runtime is not installed
            for info in pkgutil.walk_packages([str(pkg)], prefix=f"{pkg.name}."):
                yield info.name
            yield pkg.name


@pytest.mark.parametrize("name", sorted(set(_modules())))
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    try:
        module = importlib.import_module(name)
    except ImportError as exc:  # an optional extra of that package is not installed
        pytest.skip(f"{name}: {exc}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
