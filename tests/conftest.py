"""Paths every test suite shares (importable as ``conftest``: pytest's ``pythonpath`` puts ``tests/`` on the path)."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = FIXTURES / "golden_tinynet.json"
DORY_FIXTURES = FIXTURES / "dory"
# DORY's own example models live beside the repository, referenced in place (tests skip where they are absent).
SHARED_DORY = ROOT.parent / "shared" / "fixtures" / "dory"
