"""Broken pipeline config files: one line on stderr naming the file, exit code 1, no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import ROOT

CASES = {
    "syntax error": ("def get_config(:\n    return {}\n", "line 1: invalid syntax"),
    "non-dict": ("def get_config():\n    return [('name', 'x')]\n", "get_config() must return a dict, got list"),
    "unknown network": (
        "def get_config():\n    return {'name': 'x', 'network': 'resnet50'}\n",
        "network: unknown network 'resnet50'",
    ),
    "network parameters": (
        "def get_config():\n    return {'name': 'x', 'network': 'digitsnet', 'network_params': {'depth': 3}}\n",
        "network: ",
    ),
    "raising file": ("import nosuchmodule\n", "importing it raised ModuleNotFoundError"),
    "scalar for a list": ("def get_config():\n    return {'name': 'x', 'mus': 0.1}\n", "mus: expected a list"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_broken_config_is_one_line(tmp_path, case):
    body, message = CASES[case]
    path = tmp_path / "cfg.py"
    path.write_text(body)
    cmd = [sys.executable, str(ROOT / "tools" / "freebits.py"), str(path), "--dry-run"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and len(lines) == 1, f"exit {out.returncode}: {lines[-1:] or out.stdout[-300:]}"
    assert lines[0].startswith(f"Error: {path}: ") and message in lines[0], lines[0]
