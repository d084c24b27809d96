"""Pipeline configs: bad input is a one-line error naming the file and field; --dry-run prints the plan."""

import subprocess
import sys
from pathlib import Path

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from fbpipe.config import load_config  # noqa: E402


def _write(tmp_path, body: str) -> Path:
    path = tmp_path / "cfg.py"
    path.write_text(f"def get_config():\n    return {body}\n")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "x", "epochs": 3}', "epochs: unknown field"),
        ('{"network": "digitsnet"}', "name: a required field is missing"),
        ('{"name": "x", "targets": ("gvsoc:xpulpv2",)}', "targets: expected 'pulp-model:<isa>' or 'table:<file>'"),
        ('{"name": "x", "targets": ("table:nowhere.json",)}', "targets: 'table:nowhere.json': no such measured table"),
        ('{"name": "x", "variants": ("fancy",)}', "variants: expected 'orig' or 'locked'"),
        ('{"name": "x", "seed": "zero"}', "seed: expected a number"),
        ('{"name": "x", "gvsoc": "yes"}', "gvsoc: expected True or False"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(click.ClickException) as info:
        load_config(path)
    assert str(path) in info.value.message and message in info.value.message
    assert "\n" not in info.value.message


def test_missing_file_and_missing_get_config(tmp_path):
    with pytest.raises(click.ClickException, match="no such config file"):
        load_config(tmp_path / "absent.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(click.ClickException, match="get_config"):
        load_config(tmp_path / "empty.py")


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "freebits.py"), str(ROOT / "configs" / "mnv2_imagenet.py"),
         "--dry-run", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "network mobilenetv2 (64 layers, 37 layer types)" in result.stdout
    assert "Bayesian Bits: variants ['orig', 'locked'] × μ [0.0, 0.05, 0.1, 0.18, 0.3] = 10 runs" in result.stdout
    assert not out.exists()
