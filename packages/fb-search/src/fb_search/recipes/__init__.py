"""Training recipes (package data): each module defines FLOAT, SEARCH and TQT optimizer specs, step counts, BB
options and a mu grid; its docstring gives the command and the expected result."""

from __future__ import annotations

import importlib
from types import ModuleType

RECIPES = ("digits", "cifar10", "mnv1_imagenet", "mnv2_imagenet")
# The paper-scale recipes hold their BB and TQT parts together; these names select the same modules.
ALIASES = {f"{n}_{part}": n for n in ("mnv1_imagenet", "mnv2_imagenet") for part in ("bb", "tqt")}


def get_recipe(name: str) -> ModuleType:
    """The recipe module ``fb_search.recipes.<name>``."""
    name = ALIASES.get(name, name)
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    return importlib.import_module(f"fb_search.recipes.{name}")
