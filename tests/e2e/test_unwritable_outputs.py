"""Every writing command of every CLI turns an unwritable output directory into one line, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOLDEN, ROOT

from fb_deploy._cli import main as deploy
from fb_heuristic._cli import main as heuristic
from fb_profile._cli import main as profile
from fb_schema import NetConfig
from fb_schema.topologies import get_topology
from fb_search._cli import main as search


@pytest.fixture(scope="module")
def unwritable(tmp_path_factory) -> Path:
    """A directory nothing can be written into: read-only by mode, or (for root, whom modes do not stop)
    a path on the read-only sysfs."""
    if os.geteuid() != 0:
        ro = tmp_path_factory.mktemp("ro")
        ro.chmod(0o555)
        yield ro
        ro.chmod(0o755)
        return
    ro = Path("/sys/freebits-unwritable")
    try:
        ro.mkdir()
    except OSError:
        yield ro
        return
    ro.rmdir()
    pytest.skip("running as root without a read-only file system to write into")


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("inputs")
    config = tmp / "8b.json"
    NetConfig.homogeneous(get_topology("tinynet"), 8, 8).save(config)
    table = tmp / "table.json"
    res = CliRunner().invoke(profile, ["sweep", "--network", "tinynet", "-o", str(table), "--no-cache"])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(search, ["train-float", "--network", "tinynet", "--steps", "2", "--out", str(tmp)])
    assert res.exit_code == 0, res.output
    return {"config": config, "table": table, "ckpt": tmp / "checkpoints" / "float-s0"}


COMMANDS = {
    "fb-profile sweep": (profile, ["sweep", "--network", "tinynet", "--no-cache", "-o", "{ro}/t.json"]),
    "fb-profile plot": (profile, ["plot", "{table}", "-o", "{ro}/fig1.png"]),
    "fb-profile compare": (profile, ["compare", "{table}", "{table}", "--plot", "{ro}/cmp.png"]),
    "fb-heuristic apply": (heuristic, ["apply", "{config}", "{table}", "-o", "{ro}/fb.json"]),
    "fb-search train-float": (search, ["train-float", "--network", "tinynet", "--steps", "1", "--out", "{ro}/run"]),
    "fb-search search": (search, ["search", "--float-ckpt", "{ckpt}", "--steps", "1", "--mu", "0.1", "--out", "{ro}"]),
    "fb-search finetune": (search, ["finetune", "--config", "{config}", "--ckpt", "{ckpt}", "--out", "{ro}/q"]),
    "fb-search export-onnx": (search, ["export-onnx", "--ckpt", "{ckpt}", "--out", "{ro}/float.onnx"]),
    "fb-deploy integerize": (deploy, ["integerize", str(GOLDEN), "-o", "{ro}/int.json"]),
    "fb-deploy export": (deploy, ["export", str(GOLDEN), "-o", "{ro}/model"]),
    "fb-deploy export qdq": (deploy, ["export", str(GOLDEN), "--format", "qdq", "-o", "{ro}/qdq"]),
    "fb-deploy layer": (
        deploy,
        ["layer", "conv2d_8x8x8_o8_k3x3_s1x1_p1.1.1.1_g1", "--b-in", "8", "--b-wt", "8", "-o", "{ro}/layer"],
    ),
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_unwritable_output_is_one_line(name, unwritable, inputs):
    cli, args = COMMANDS[name]
    args = [a.format(ro=unwritable, **inputs) for a in args]
    res = CliRunner().invoke(cli, args)
    crash = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    assert crash is None, f"{name}: traceback: {type(crash).__name__}: {crash}"
    last = res.output.strip().splitlines()[-1]
    assert res.exit_code == 1 and last.startswith(f"Error: {unwritable}"), res.output
    assert not any(p.name.endswith(".tmp") for p in unwritable.iterdir()) if unwritable.exists() else True


def test_pipeline_unwritable_out_is_one_line(unwritable, tmp_path):
    config = tmp_path / "cfg.py"
    config.write_text('def get_config():\n    return {"name": "ro", "network": "digitsnet"}\n')
    cmd = [sys.executable, str(ROOT / "tools" / "freebits.py"), str(config), "--out", str(unwritable / "run")]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stderr[-2000:]
    assert out.stderr.strip().splitlines() == [out.stderr.strip().splitlines()[0]]
    assert out.stderr.startswith(f"Error: {unwritable}"), out.stderr[-2000:]
