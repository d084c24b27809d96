"""Training recipes (package data): each module defines FLOAT, SEARCH and TQT optimizer specs, step counts, BB
options and a mu grid; its docstring gives the command and the expected result.

A recipe can also be a Python file of the user's (``--recipe my_recipe.py``, or ``recipe="my_recipe.py"`` in a
pipeline config, relative to the config): it defines the same names; any it leaves out are taken from
``digits``."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from types import ModuleType

RECIPES = ("digits", "cifar10", "mnv1_imagenet", "mnv2_imagenet")
# The paper-scale recipes hold their BB and TQT parts together; these names select the same modules.
ALIASES = {f"{n}_{part}": n for n in ("mnv1_imagenet", "mnv2_imagenet") for part in ("bb", "tqt")}


REQUIRED = ("FLOAT", "SEARCH", "TQT", "FLOAT_STEPS", "SEARCH_STEPS", "TQT_STEPS", "BB", "MU_GRID", "CALIBRATION_IMAGES")
_FILES: dict[str, ModuleType] = {}


def _recipe_file(path: Path) -> ModuleType:
    key = str(path.resolve())
    if key in _FILES:
        return _FILES[key]
    if not path.is_file():
        raise ValueError(f"recipe {path}: no such file")
    spec = importlib.util.spec_from_file_location(f"fb_recipe_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - a user's file: report it on one line
        raise ValueError(f"recipe {path}: {type(exc).__name__}: {exc}") from None
    base = importlib.import_module("fb_search.recipes.digits")
    for name in REQUIRED:
        if not hasattr(module, name):
            setattr(module, name, getattr(base, name))
    _FILES[key] = module
    return module


def get_recipe(name: str) -> ModuleType:
    """The recipe module ``fb_search.recipes.<name>``, or a recipe file (``*.py``)."""
    if str(name).endswith(".py"):
        return _recipe_file(Path(name))
    name = ALIASES.get(name, name)
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return importlib.import_module(f"fb_search.recipes.{name}")
