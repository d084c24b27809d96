"""The gvsoc backend without the real tools: log parsing, command construction, missing-tool errors, and the
whole flow against stand-in executables that behave like fb-deploy, DORY and the PULP SDK."""

from __future__ import annotations

import os
import stat

import pytest
from click.testing import CliRunner

from fb_profile import make_backend, sweep
from fb_profile._cli import main
from fb_profile._gvsoc import deploy_command, dory_command, layer_cycles_from_log, parse_perf, run_command
from fb_schema import LatencyTable, LayerType
from fb_schema.topologies import tinynet

CURRENT = """
BNReluConvolution0 performance:
  - num cycles: 123456
  - MACs: 36864
  - MAC/cycle: 0.298
  - n. of Cores: 8


Final performance:
  - num cycles: 123456
  - MACs: 36864
  - MAC/cycle: 0.298
  - n. of Cores: 8

Checking final output: Checksum OK
"""
OCT2022 = """ Layer 0  : num_cycles: 7777       , MACs: 36864      , MAC/cycle: 4.740000, n. of Cores: 8

num_cycles: 7777
MACs: 36864
MAC/cycle: 4.740000
n. of Cores: 8
"""
Y2020 = """[0] : num_cycles: 4242
[0] : MACs: 36864
[0] : MAC/cycle: 8.690000
[0] : n. of Cores: 8
"""


def test_parser_reads_all_three_print_formats():
    assert parse_perf(CURRENT) == {"BNReluConvolution0": 123456, "Final": 123456}
    assert parse_perf(OCT2022) == {"Layer 0": 7777, "Final": 7777}
    assert parse_perf(Y2020) == {"[0]": 4242}
    assert [layer_cycles_from_log(t) for t in (CURRENT, OCT2022, Y2020)] == [123456, 7777, 4242]
    two = CURRENT.replace("Final", "Addition1").replace("123456", "1000", 1)
    assert layer_cycles_from_log(two) == 1000 + 123456
    # fb-deploy's layer.json names the profiled layer (an identity pooling may run before it).
    assert layer_cycles_from_log(two, "Addition1", 1) == 123456
    assert layer_cycles_from_log(OCT2022, "Addition1", 0) == 7777
    assert layer_cycles_from_log(Y2020, "x", 0) == 4242
    with pytest.raises(
        RuntimeError,
        match="no cycle count for DORY layer 'FullyConnected1' .index 1. in the GVSOC output; found BNRelu",
    ):
        layer_cycles_from_log(two, "FullyConnected1", 1)


def test_parser_rejects_failed_checksums_and_silent_runs():
    with pytest.raises(RuntimeError, match=r"wrong result \(Checking final output: Checksum Failed"):
        layer_cycles_from_log(CURRENT.replace("Checksum OK", "Checksum Failed: true [1] vs. calculated [2]"))
    with pytest.raises(RuntimeError, match="no cycle count in the GVSOC output"):
        layer_cycles_from_log("Hello from FC\n")


def test_commands_for_each_isa():
    assert deploy_command("fb-deploy", "k", 4, 2, 8, "/m") == [
        "fb-deploy", "layer", "k", "--b-in", "4", "--b-wt", "2", "--b-out", "8", "-o", "/m"]  # fmt: skip
    assert "--b-wt" not in deploy_command("fb-deploy", "add", 8, None, 8, "/m")
    v2 = dory_command("/venv/bin/python", "/dory", "/m", "/app", "xpulpv2")
    assert v2[:5] == ["/venv/bin/python", "/dory/network_generate.py", "Quantlab", "PULP.PULP_gvsoc", "/m/config.json"]
    assert v2[5:] == ["--app_dir", "/app", "--optional", "mixed-sw", "--perf_layer", "--verbose_level", "Perf_final"]
    assert dory_command("p", "/dory", "/m", "/app", "xpulpnn1")[7:9] == ["--optional", "mixed-hw"]
    assert run_command("/sdk", "/my app", "xpulpnn1") == [
        "bash", "-c",
        "source /sdk/configs/pulp-open-nn.sh && make -C '/my app' clean all run platform=gvsoc CORE=8"]  # fmt: skip
    assert "configs/pulp-open.sh" in run_command("/sdk", "/a", "xpulpv2")[2]


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
def fake_tools(tmp_path):
    """Stand-ins: fb-deploy writes config.json, 'DORY's python' answers the probe and writes an app, the SDK
    config defines `make` to print a DORY performance block whose cycles encode the arguments it was given."""
    bin_ = tmp_path / "bin"
    bin_.mkdir()
    deploy = _exe(bin_ / "fb-deploy", "a=0; w=0; o=0; out=\n"
                  "while [ $# -gt 0 ]; do case $1 in --b-in) a=$2;; --b-wt) w=$2;; --b-out) o=$2;; -o) out=$2;; esac;"
                  " shift; done\n"
                  'mkdir -p "$out" && echo "$a$w$o" > "$out/config.json"\n'
                  'echo \'{"dory_layer": "L1", "dory_layer_index": 1}\' > "$out/layer.json"\n')  # fmt: skip
    python = _exe(bin_ / "dory-python", 'if [ "$1" = -c ]; then echo 1.23.5; exit 0; fi\n'
                  'mkdir -p "$6" && { cat "$4"; [ "$8" = mixed-hw ] && echo 1 || echo 0; }'
                  ' | tr -d "\\n" > "$6/args"\n')  # fmt: skip
    dory = tmp_path / "dory"
    dory.mkdir()
    (dory / "network_generate.py").write_text("")
    sdk = tmp_path / "sdk" / "configs"
    sdk.mkdir(parents=True)
    for name in ("pulp-open", "pulp-open-nn"):
        (sdk / f"{name}.sh").write_text(
            'make() { [ "$PULP_RISCV_GCC_TOOLCHAIN" ] || return 1;'
            ' printf "\\nL0 performance:\\n  - num cycles: 5\\n\\nL1 performance:\\n  - num cycles: %s\\n"'
            ' "$(cat "$2/args")"; }\n'
        )
    tc = tmp_path / "tc" / "bin"
    tc.mkdir(parents=True)
    _exe(tc / "riscv32-unknown-elf-gcc", 'echo "riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622"\n')
    return {"fb_deploy": deploy, "dory_python": python, "dory_dir": str(dory), "pulp_sdk": str(tmp_path / "sdk"),
            "toolchain": str(tc.parent)}  # fmt: skip


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("fb_deploy", "fb-deploy not found .* point --fb-deploy to it"),
        ("dory_dir", "DORY not found .* point --dory-dir \\(or FB_DORY_DIR\\)"),
        ("dory_python", "DORY's interpreter not found .* point --dory-python \\(or FB_DORY_PYTHON\\)"),
        ("pulp_sdk", "PULP SDK not found .* point --pulp-sdk \\(or FB_PULP_SDK\\)"),
        ("toolchain", "toolchain not found .* set PULP_RISCV_GCC_TOOLCHAIN \\(or --toolchain\\)"),
    ],
)
def test_missing_tools_are_one_line_errors(fake_tools, tmp_path, missing, message, monkeypatch):
    for var in ("FB_DORY_PYTHON", "FB_DORY_DIR", "FB_PULP_SDK", "PULP_RISCV_GCC_TOOLCHAIN", "FB_DEPLOY"):
        monkeypatch.delenv(var, raising=False)
    tools = {**fake_tools, missing: str(tmp_path / "nowhere")}
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
    r = CliRunner().invoke(main, args, env={k: v for k, v in os.environ.items() if k != "PULP_RISCV_GCC_TOOLCHAIN"})
    assert r.exit_code == 0, r.output
    table = LatencyTable.load(out)
    assert table.target.name == "gvsoc-xpulpnn1-pulp-gcc" and table.target.backend == "gvsoc" and not table.failed
    conv = LayerType.conv2d(8, 8, 1, 8, kernel=3).key
    add = LayerType.add(8, 8, 8).key
    # The stand-in make printed the digits b_in, b_wt, b_out, [mixed-hw] that reached fb-deploy and DORY.
    assert table.entries[(conv, 4, 2)] == 4281
    assert table.entries[(add, 8, None)] == 8081
    logs = sorted((tmp_path / "work").glob("*/gvsoc.log"))
    assert len(logs) == len(table.entries)


def test_flow_with_the_real_fb_deploy(fake_tools, tmp_path):
    """fb-deploy's one-layer model dirs (real), stand-in DORY/SDK: the profiled layer named in layer.json is read."""
    import shutil
    import sys
    from pathlib import Path

    real = shutil.which("fb-deploy", path=str(Path(sys.executable).parent)) or shutil.which("fb-deploy")
    if real is None:
        pytest.skip("fb-deploy is not installed")
    dory_py = _exe(tmp_path / "dory-py2", 'if [ "$1" = -c ]; then echo 1.23.5; exit 0; fi\n'
                   f'mkdir -p "$6" && {sys.executable} -c "import json,sys; print(json.load(open(sys.argv[1]))'
                   '[\'dory_layer\'])" "$(dirname "$4")/layer.json" > "$6/name"\n')  # fmt: skip
    for cfg in (Path(fake_tools["pulp_sdk"]) / "configs").glob("*.sh"):
        cfg.write_text('make() { printf "\\nPre0 performance:\\n  - num cycles: 5\\n\\n%s performance:\\n'
                       '  - num cycles: 777\\n" "$(cat "$2/name")"; }\n')  # fmt: skip
    tools = {**fake_tools, "fb_deploy": real, "dory_python": dory_py}
    table = sweep(tinynet(), "gvsoc:xpulpv2", allowed_bits=(8,), cache_dir=False, progress=False, **tools)
    assert not table.failed, table.failed
    assert len(table.entries) == 5 and set(table.entries.values()) == {777}
