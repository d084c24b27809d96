"""The DORY adapter, tested without the tools: commands, working directories, success detection."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from fb_deploy import ToolError, dory_command, run_dory
from fb_deploy._adapters import find_python
from fb_deploy._cli import main

FAKE_DORY = r"""
import os, shutil, sys
mode = os.environ.get("FAKE_DORY_MODE", "ok")
app = sys.argv[sys.argv.index("--app_dir") + 1]
os.makedirs("logs/Frontend", exist_ok=True)  # DORY writes its stage dumps into the working directory
if mode == "crash":
    sys.stderr.write("Traceback (most recent call last):\n")
    sys.stderr.write("AttributeError: 'Layer_node' object has no attribute 'add_bits'\n")
    sys.exit(1)
if mode == "notile":
    print("Convolution: Tiling of weights and Input/output activation from L3 not yet working. Exiting...")
    sys.exit(0)
if mode == "silent":
    sys.exit(0)
shutil.rmtree(app, ignore_errors=True)
os.makedirs(os.path.join(app, "src")); os.makedirs(os.path.join(app, "inc"))
open(os.path.join(app, "src", "network.c"), "w").write("// net\n")
open(os.path.join(app, "inc", "network.h"), "w").write(
    'static char * Layers_name[3] = {"BNReluConvolution0", "Addition1", "FullyConnected2"};\n')
open(os.path.join(app, "cwd.txt"), "w").write(os.getcwd() + "\n" + " ".join(sys.argv[1:]))
print("Done!")
"""


@pytest.fixture()
def fake_dory(tmp_path) -> Path:
    root = tmp_path / "dory"
    (root / "network_generate.py").parent.mkdir()
    (root / "network_generate.py").write_text(FAKE_DORY)
    for sub in ("pulp-nn", "pulp-nn-mixed"):
        kernels = root / "dory" / "Hardware_targets" / "PULP" / "Backend_Kernels" / sub
        kernels.mkdir(parents=True)
        (kernels / "README.md").write_text("kernels\n")
    return root


def test_dory_command(tmp_path):
    cmd = dory_command("/py", tmp_path, tmp_path / "m" / "config.json", "xpulpnn1", tmp_path / "app")
    assert cmd == [
        "/py",
        str(tmp_path / "network_generate.py"),
        "Quantlab",
        "PULP.PULP_gvsoc",
        str(tmp_path / "m" / "config.json"),
        "--optional",
        "mixed-hw",
        "--perf_layer",
        "--app_dir",
        str(tmp_path / "app"),
    ]
    assert dory_command("/py", tmp_path, tmp_path / "c.json", "xpulpv2", tmp_path / "a")[6] == "mixed-sw"
    with pytest.raises(ToolError, match="xpulpnn2: no public DORY/GVSOC support"):
        dory_command("/py", tmp_path, tmp_path / "c.json", "xpulpnn2", tmp_path / "a")


def test_missing_python_says_what_to_install(monkeypatch):
    monkeypatch.delenv("DORY_PYTHON", raising=False)
    with pytest.raises(ToolError, match=r"numpy<1\.24.*--dory-python or set DORY_PYTHON"):
        find_python(None)
    with pytest.raises(ToolError, match="--dory-python /no/such/python: not an executable"):
        find_python("/no/such/python")


def test_run_dory_in_scratch_directory(golden_dir, fake_dory, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FAKE_DORY_MODE", "ok")
    app = tmp_path / "app"
    result = run_dory(golden_dir, fake_dory, "xpulpv2", app, python=sys.executable)
    assert result.layers == ["BNReluConvolution0", "Addition1", "FullyConnected2"]
    cwd, argv = (app / "cwd.txt").read_text().splitlines()
    assert Path(cwd).name.startswith("fb-dory-") and not Path(cwd).exists()  # scratch dir, removed after success
    assert not (tmp_path / "logs").exists() and not (golden_dir / "logs").exists()
    assert "--optional mixed-sw --perf_layer" in argv
    assert "Done!" in result.log.read_text()
    run_dory(golden_dir, fake_dory, "xpulpv2", app, python=sys.executable)  # an existing DORY app may be replaced


@pytest.mark.parametrize(
    "mode,message",
    [
        ("crash", r"DORY failed \(exit 1\): AttributeError: 'Layer_node' object has no attribute 'add_bits'"),
        ("notile", r"DORY exited 0 without an application: Convolution: Tiling .* not yet working"),
        ("silent", r"DORY exited 0 but produced no application"),
    ],
)
def test_run_dory_failures(golden_dir, fake_dory, monkeypatch, tmp_path, mode, message):
    monkeypatch.setenv("FAKE_DORY_MODE", mode)
    with pytest.raises(ToolError, match=message):
        run_dory(golden_dir, fake_dory, "xpulpv2", tmp_path / "app", python=sys.executable)


def test_run_dory_protects_foreign_directories(golden_dir, fake_dory, tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    with pytest.raises(ToolError, match="exists and is not a DORY application; DORY would delete it"):
        run_dory(golden_dir, fake_dory, "xpulpv2", precious, python=sys.executable)
    assert (precious / "thesis.tex").exists()


def test_missing_dory_submodule(golden_dir, fake_dory):
    (fake_dory / "dory" / "Hardware_targets" / "PULP" / "Backend_Kernels" / "pulp-nn-mixed" / "README.md").unlink()
    with pytest.raises(ToolError, match="submodule pulp-nn-mixed is empty; run git submodule update --init"):
        run_dory(golden_dir, fake_dory, "xpulpv2", python=sys.executable)


def test_dory_cli_end_to_end(golden_dir, fake_dory, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_DORY_MODE", "ok")
    monkeypatch.setenv("DORY_PYTHON", sys.executable)
    args = ["dory", str(golden_dir), "--dory-dir", str(fake_dory), "--app-dir", str(tmp_path / "app")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "3 layers: BNReluConvolution0, Addition1, FullyConnected2" in res.output
    res = CliRunner().invoke(main, [*args, "--isa", "xpulpnn2"])
    assert res.exit_code == 1 and "no public DORY/GVSOC support" in res.output
    assert json.loads((golden_dir / "config.json").read_text())["onnx_file"] == "model.onnx"
