"""Shared by every test suite: the repository's paths (importable as ``conftest``: pytest's ``pythonpath`` puts
``tests/`` on the path) and small ONNX classifiers written with ``onnx.helper``."""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden_tinynet.json"
DORY_FIXTURES = FIXTURES / "dory"
# DORY's own example models live beside the repository, referenced in place (tests skip where they are absent).
SHARED_DORY = ROOT.parent / "shared" / "fixtures" / "dory"

_BUILDERS = ROOT / "examples" / "onnx_graphs.py"


def gvsoc_kit_missing() -> str | None:
    """Why the tests that run DORY and GVSOC cannot run here (None: they can)."""
    unset = [
        v for v in ("DORY_HOME", "DORY_PYTHON", "PULP_SDK_HOME", "PULP_RISCV_GCC_TOOLCHAIN") if not os.environ.get(v)
    ]
    if unset:
        return f"GVSOC kit not configured ({', '.join(unset)} unset): source PREFIX/env.sh pulp-open"
    return None if shutil.which("gvsoc") else "gvsoc not on PATH: source PREFIX/env.sh pulp-open"


needs_gvsoc_kit = pytest.mark.skipif(gvsoc_kit_missing() is not None, reason=gvsoc_kit_missing() or "")


def _load_builders():
    spec = importlib.util.spec_from_file_location("fb_test_onnx_builders", _BUILDERS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def onnx_nets():
    """The ``examples/onnx_graphs.py`` module (ResNet-8, DS-CNN and max-pool graphs as ``onnx.ModelProto``)."""
    pytest.importorskip("onnx")
    return _load_builders()
