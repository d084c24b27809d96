"""Run the docstring examples of every package module (the optax convention: examples that execute)."""

import doctest
import importlib
import pkgutil

import pytest
from conftest import ROOT


def _modules():
    for src in sorted(ROOT.glob("packages/*/src")):
        for pkg in sorted(p for p in src.iterdir() if (p / "__init__.py").exists()):
            for info in pkgutil.walk_packages([str(pkg)], prefix=f"{pkg.name}."):
                yield info.name
            yield pkg.name


@pytest.mark.parametrize("name", sorted(set(_modules())))
def test_docstring_examples(name, monkeypatch):
    monkeypatch.chdir(ROOT)
    # `make test` installs every package with its extras, so an ImportError is a broken module: let it fail.
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
