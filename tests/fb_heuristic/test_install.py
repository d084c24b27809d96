"""`pip install packages/fb-schema packages/fb-heuristic` into an empty venv pulls in no numpy and no jax."""

import json
import shutil
import subprocess
import venv
from pathlib import Path

from conftest import ROOT

HEAVY = {"numpy", "jax", "jaxlib", "flax", "tensorflow", "onnx", "torch"}


def test_fresh_venv_install_is_light(tmp_path):
    # build from copies so that the install leaves no build/ folders in the working tree
    ignore = shutil.ignore_patterns("build", "dist", "*.egg-info", "__pycache__")
    for name in ("fb-schema", "fb-heuristic"):
        shutil.copytree(ROOT / "packages" / name, tmp_path / name, ignore=ignore)
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    python = env_dir / "bin" / "python"
    before = _installed(python)
    assert not before & HEAVY

    subprocess.run(
        [python, "-m", "pip", "install", "-q", str(tmp_path / "fb-schema"), str(tmp_path / "fb-heuristic")],
        check=True,
        timeout=300,
        cwd=tmp_path,
    )

    after = _installed(python)
    assert {"fb-schema", "fb-heuristic", "click"} <= after
    assert not after & HEAVY, after & HEAVY
    new = after - before
    assert new <= {"fb-schema", "fb-heuristic", "click", "colorama"}, new  # click's only (Windows) dependency

    listed = subprocess.run([python, "-m", "pip", "list", "--format=json"], capture_output=True, text=True, check=True)
    names = {p["name"].lower() for p in json.loads(listed.stdout)}
    assert "numpy" not in names and "jax" not in names

    # non-editable: the package is imported from the venv, not from the working tree
    where = subprocess.run(
        [python, "-c", "import fb_schema, fb_heuristic; print(fb_schema.__file__); print(fb_heuristic.__version__)"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.split()
    assert where[0].startswith(str(env_dir))
    assert where[1] == "0.1.0"

    helped = subprocess.run([env_dir / "bin" / "fb-heuristic", "--help"], capture_output=True, text=True, timeout=60)
    assert helped.returncode == 0, helped.stderr
    for command in ("apply", "latency", "select", "diff"):
        assert command in helped.stdout


def _installed(python: Path) -> set[str]:
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted({d.metadata['Name'].lower() for d in m.distributions()})))"
    )
    out = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout))
