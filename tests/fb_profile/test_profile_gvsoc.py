"""The gvsoc backend without the real tools: log parsing, command construction, missing-tool errors, and the
whole flow against stand-in executables that behave like fb-deploy, DORY and the PULP SDK."""

from __future__ import annotations

import json
import stat

import pytest
from click.testing import CliRunner
from conftest import needs_gvsoc_kit

from fb_profile import make_backend, sweep
from fb_profile._cli import main
from fb_profile._gvsoc import deploy_command, gvsoc_command, layer_cycles
from fb_schema import LatencyTable, LayerType
from fb_schema.topologies import tinynet


def test_commands_for_each_isa():
    assert deploy_command("fb-deploy", "k", 4, 2, 8, "/m") == [
        "fb-deploy", "layer", "k", "--b-in", "4", "--b-wt", "2", "--b-out", "8", "-o", "/m"]  # fmt: skip
    assert "--b-wt" not in deploy_command("fb-deploy", "add", 8, None, 8, "/m")
    tools = {"dory_dir": "/dory", "dory_python": None, "pulp_sdk": "/sdk"}
    assert gvsoc_command("fb-deploy", "/m", "/r", "xpulpnn1", tools) == [
        "fb-deploy", "gvsoc", "/m", "--flow", "mixed-hw", "-o", "/r",
        "--dory-dir", "/dory", "--pulp-sdk", "/sdk"]  # fmt: skip
    assert gvsoc_command("fb-deploy", "/m", "/r", "xpulpv2", {})[3:5] == ["--flow", "mixed-sw"]


def test_profiled_layer_is_read_from_cycles_json():
    cycles = {"layers": [{"name": "Pooling0", "cycles": 5}, {"name": "Addition1", "cycles": 777}]}
    assert layer_cycles(cycles, "Addition1") == 777
    assert layer_cycles(cycles, None) == 777
    with pytest.raises(
        RuntimeError, match="no cycle count for DORY layer 'FullyConnected1' in cycles.json; found Pool"
    ):
        layer_cycles(cycles, "FullyConnected1")


def test_xpulpnn2_and_unknown_isas_are_errors():
    with pytest.raises(ValueError, match="no public DORY/GVSOC support for XpulpNN-mixed; use pulp-model:xpulpnn2"):
        make_backend("gvsoc:xpulpnn2")
    with pytest.raises(ValueError, match="unknown ISA 'riscy' for the gvsoc backend"):
        make_backend("gvsoc:riscy")


def _exe(path, text):
    path.write_text("#!/bin/bash\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


@pytest.fixture
def fake_tools(tmp_path, monkeypatch):
    """Stand-ins: ``fb-deploy layer`` writes a model dir whose config.json records b_in, b_wt, b_out; ``fb-deploy
    gvsoc`` writes a cycles.json whose profiled layer's cycles encode those digits and the flow (1 = mixed-hw)."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    deploy = _exe(bin_ / "fb-deploy", "cmd=$1; shift; a=0; w=0; o=0; out=; flow=; model=$1\n"
                  "while [ $# -gt 0 ]; do case $1 in --b-in) a=$2;; --b-wt) w=$2;; --b-out) o=$2;; -o) out=$2;;"
                  " --flow) flow=$2;; esac; shift; done\n"
                  'if [ "$cmd" = layer ]; then mkdir -p "$out" && echo "$a$w$o" > "$out/config.json"\n'
                  '  echo \'{"dory_layer": "L1", "dory_layer_index": 1}\' > "$out/layer.json"; exit 0; fi\n'
                  '[ "$flow" = mixed-hw ] && f=1 || f=0\n'
                  'mkdir -p "$out" && echo "{\\"layers\\": [{\\"name\\": \\"L0\\", \\"cycles\\": 5},'
                  ' {\\"name\\": \\"L1\\", \\"cycles\\": $(cat "$model/config.json")$f}]}" > "$out/cycles.json"\n'
                  'echo "gvsoc" > "$out/gvsoc.log"\n')  # fmt: skip
    python = _exe(bin_ / "dory-python", 'if [ "$1" = -c ]; then echo 1.23.5; exit 0; fi\n')
    dory = tmp_path / "dory"
    dory.mkdir()
    (dory / "network_generate.py").write_text("")
    sdk = tmp_path / "sdk" / "configs"
    sdk.mkdir(parents=True)
    for name in ("pulp-open", "pulp-open-nn"):
        (sdk / f"{name}.sh").write_text("")
    tc = tmp_path / "tc" / "bin"
    tc.mkdir(parents=True)
    _exe(tc / "riscv32-unknown-elf-gcc", 'echo "riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622"\n')
    monkeypatch.setenv("PULP_RISCV_GCC_TOOLCHAIN", str(tc.parent))
    return {"fb_deploy": deploy, "dory_python": python, "dory_dir": str(dory), "pulp_sdk": str(tmp_path / "sdk")}


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("fb_deploy", "fb-deploy not found .* point --fb-deploy to it"),
        ("dory_dir", "DORY not found .* point --dory-dir \\(or DORY_HOME\\)"),
        ("dory_python", "DORY's interpreter not found .* point --dory-python \\(or DORY_PYTHON\\)"),
        ("pulp_sdk", "PULP SDK not found .* point --pulp-sdk \\(or PULP_SDK_HOME\\)"),
        ("toolchain", "RISC-V GCC not found .PULP_RISCV_GCC_TOOLCHAIN=.* export it"),
    ],
)
def test_missing_tools_are_one_line_errors(fake_tools, tmp_path, missing, message, monkeypatch):
    for var in ("DORY_PYTHON", "DORY_HOME", "PULP_SDK_HOME", "FB_DEPLOY"):
        monkeypatch.delenv(var, raising=False)
    tools = {**fake_tools, missing: str(tmp_path / "nowhere")}
    if missing == "toolchain":
        tools.pop("toolchain")
        monkeypatch.setenv("PULP_RISCV_GCC_TOOLCHAIN", str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match=message) as e:
        sweep(tinynet(), "gvsoc:xpulpv2", cache_dir=False, progress=False, **tools)
    assert "\n" not in str(e.value)


def test_dory_interpreter_with_new_numpy_is_rejected(fake_tools, tmp_path):
    new = _exe(tmp_path / "py3", "echo 2.4.6\n")
    with pytest.raises(ValueError, match=r"py3 is not usable for DORY \(2.4.6\): DORY needs .*numpy<1.24"):
        make_backend("gvsoc:xpulpnn1", **{**fake_tools, "dory_python": new}).preflight()


def test_whole_flow_with_stand_in_tools(fake_tools, tmp_path):
    out = tmp_path / "t.json"
    args = ["sweep", "--network", "tinynet", "--target", "gvsoc:xpulpnn1", "-o", str(out), "--no-progress",
            "--cache-dir", str(tmp_path / "cache"), "--work-dir", str(tmp_path / "work")]  # fmt: skip
    for name, value in fake_tools.items():
        args += [f"--{name.replace('_', '-')}", value]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    table = LatencyTable.load(out)
    assert table.target.name == "gvsoc-xpulpnn1-pulp-gcc" and table.target.backend == "gvsoc" and not table.failed
    conv = LayerType.conv2d(8, 8, 1, 8, kernel=3).key
    add = LayerType.add(8, 8, 8).key
    # The stand-in fb-deploy gvsoc reported the digits b_in, b_wt, b_out, [mixed-hw] it was given.
    assert table.entries[(conv, 4, 2)] == 4281
    assert table.entries[(add, 8, None)] == 8081
    logs = sorted((tmp_path / "work").glob("*/run/gvsoc.log"))
    assert len(logs) == len(table.entries)


@needs_gvsoc_kit
def test_one_point_on_the_real_gvsoc(tmp_path):
    """One point through the real fb-deploy gvsoc: the profiled layer's cycles, checksum-checked."""
    backend = make_backend("gvsoc:xpulpv2", work_dir=str(tmp_path))
    backend.preflight()
    lt = LayerType.conv2d(8, 8, 16, 16, kernel=1)
    cycles = backend.latency(lt, 8, 8)
    point = next(tmp_path.glob("*/run/cycles.json"))
    measured = json.loads(point.read_text())
    assert all(x["checksum"] == "ok" for x in measured["layers"])
    assert cycles == measured["layers"][-1]["cycles"] and cycles > 0
