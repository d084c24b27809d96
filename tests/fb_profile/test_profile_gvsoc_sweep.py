"""gvsoc sweeps with stand-in tools: the toolchain in the target name, checksum failures and hangs (not retried,
cached, listed), the simulator killed on a hang, sweep plans."""

from __future__ import annotations

import stat
import time

import pytest

from fb_profile import make_backend, sweep
from fb_profile._sweep import SweepPlan
from fb_profile._toolchain import classify
from fb_schema import LayerType
from fb_schema.topologies import tinynet

CONV = LayerType.conv2d(8, 8, 1, 8, kernel=3).key


def _exe(path, text):
    path.write_text("#!/bin/bash\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_toolchain_profiles():
    assert classify("riscv64-unknown-elf-gcc () 12.2.0", has_shim=True) == "kit-gcc12"
    assert classify("riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622", has_shim=False) == "pulp-gcc"
    assert classify("riscv64-unknown-elf-gcc () 13.1.0", has_shim=False) == "gcc13"


@pytest.fixture
def kit(tmp_path, monkeypatch):
    """A GCC 12 behind the kit's shim and a stand-in fb-deploy whose `gvsoc` reports 1000*b_in + 10*b_wt cycles;
    b_wt == 2 fails the checksum (cycles.json written, exit 1), b_in == 4 and b_wt == 4 hangs (a `sleep` child
    that writes hung.txt if it is not killed). Every `gvsoc` call appends to calls.txt."""
    tc = tmp_path / "toolchain"
    (tc / "bin").mkdir(parents=True)
    (tc / "include").mkdir()
    (tc / "include" / "pulp_shim.h").write_text("")
    _exe(tc / "bin" / "riscv32-unknown-elf-gcc", 'echo "riscv64-unknown-elf-gcc () 12.2.0"\n')
    monkeypatch.setenv("PULP_RISCV_GCC_TOOLCHAIN", str(tc))
    deploy = _exe(tmp_path / "fb-deploy", "cmd=$1; shift; a=0; w=0; out=; model=$1\n"
                  "while [ $# -gt 0 ]; do case $1 in --b-in) a=$2;; --b-wt) w=$2;; -o) out=$2;; esac; shift; done\n"
                  'if [ "$cmd" = layer ]; then mkdir -p "$out" && echo "$a $w" > "$out/bits"\n'
                  '  echo \'{"dory_layer": "L1"}\' > "$out/layer.json"; exit 0; fi\n'
                  f'echo x >> {tmp_path}/calls.txt; read a w < "$model/bits"; mkdir -p "$out"\n'
                  f'if [ "$a$w" = 44 ]; then (sleep 3; echo late > {tmp_path}/hung.txt) & sleep 30; exit 1; fi\n'
                  'c=$((1000*a + 10*w)); echo "{\\"layers\\": [{\\"name\\": \\"L1\\", \\"cycles\\": $c}]}"'
                  ' > "$out/cycles.json"\n'
                  'if [ "$w" = 2 ]; then echo "Error: L1: checksum failed: expected 5, computed 6" >&2; exit 1; fi'
                  "\n")  # fmt: skip
    python = _exe(tmp_path / "dory-python", 'if [ "$1" = -c ]; then echo 1.23.5; exit 0; fi\n')
    (tmp_path / "dory").mkdir()
    (tmp_path / "dory" / "network_generate.py").write_text("")
    (tmp_path / "sdk" / "configs").mkdir(parents=True)
    for name in ("pulp-open", "pulp-open-nn"):
        (tmp_path / "sdk" / "configs" / f"{name}.sh").write_text("")
    return {"fb_deploy": deploy, "dory_python": python, "dory_dir": str(tmp_path / "dory"),
            "pulp_sdk": str(tmp_path / "sdk"), "timeout": 1.5}  # fmt: skip


def _calls(tmp_path) -> int:
    return (tmp_path / "calls.txt").read_text().count("x")


def test_failures_are_listed_cached_and_not_retried(kit, tmp_path):
    cache = tmp_path / "cache"
    table = sweep(tinynet(), "gvsoc:xpulpv2", (2, 4, 8), cache_dir=cache, progress=False,
                  plan=SweepPlan(types=(CONV,)), **kit)  # fmt: skip
    assert table.target.name == "gvsoc-xpulpv2-kit-gcc12"
    assert table.entries[(CONV, 8, 8)] == 8080 and table.entries[(CONV, 2, 4)] == 2040
    errors = {(f["b_in"], f["b_wt"]): f["error"] for f in table.failed}
    assert set(errors) == {(2, 2), (4, 2), (8, 2), (4, 4)}
    assert (
        errors[(8, 2)]
        == "SimulationError: fb-deploy gvsoc failed (exit 1): L1: checksum failed: expected 5, computed 6"
    )
    assert errors[(4, 4)].startswith("SimulationError: fb-deploy gvsoc did not finish within 2 s")
    time.sleep(3.5)
    assert not (tmp_path / "hung.txt").exists()  # the hung run's children were killed with it
    assert _calls(tmp_path) == 9  # each point once: deterministic failures are not retried
    prov = table.provenance
    assert prov["toolchain"]["profile"] == "kit-gcc12" and prov["flow"] == "mixed-sw"
    assert prov["points"]["measured"] == 5 and prov["points"]["failed"] == 4
    # Resumed: nothing runs again; --retry-failed re-runs only the four failures.
    again = sweep(tinynet(), "gvsoc:xpulpv2", (2, 4, 8), cache_dir=cache, progress=False,
                  plan=SweepPlan(types=(CONV,)), **kit)  # fmt: skip
    assert _calls(tmp_path) == 9 and again.failed == table.failed
    assert again.provenance["points"]["not_measured"] == again.provenance["points"]["total"] - 9
    sweep(tinynet(), "gvsoc:xpulpv2", (2, 4, 8), cache_dir=cache, progress=False,
          plan=SweepPlan(types=(CONV,), retry_failed=True), **kit)  # fmt: skip
    assert _calls(tmp_path) == 13


def test_plan_subsets_and_cached_only(kit, tmp_path):
    cache = tmp_path / "cache"
    part = sweep(tinynet(), "gvsoc:xpulpnn1", (2, 8), cache_dir=cache, progress=False,
                 plan=SweepPlan(pairs=((8, 8),), types=(CONV,)), **kit)  # fmt: skip
    assert list(part.entries) == [(CONV, 8, 8)] and _calls(tmp_path) == 1
    only = sweep(tinynet(), "gvsoc:xpulpnn1", (2, 8), cache_dir=cache, progress=False,
                 plan=SweepPlan(cached_only=True), **kit)  # fmt: skip
    assert only.entries == part.entries and only.provenance["this_run"]["now"] == 0 and _calls(tmp_path) == 1
    with pytest.raises(ValueError, match="--types: 'nope' is not a layer type of this network"):
        sweep(tinynet(), "gvsoc:xpulpv2", cache_dir=cache, progress=False, plan=SweepPlan(types=("nope",)), **kit)
    with pytest.raises(ValueError, match="--pairs: 4/4 is outside the allowed bits 2, 8"):
        sweep(tinynet(), "gvsoc:xpulpv2", (2, 8), cache_dir=cache, progress=False, plan=SweepPlan(pairs=((4, 4),)),
              **kit)  # fmt: skip


def test_two_toolchains_never_share_cached_points(kit, tmp_path, monkeypatch):
    kit_backend = make_backend("gvsoc:xpulpv2", **kit)
    kit_params = kit_backend.cache_params()
    pulp = tmp_path / "pulp"
    (pulp / "bin").mkdir(parents=True)
    _exe(pulp / "bin" / "riscv32-unknown-elf-gcc", 'echo "riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622"\n')
    monkeypatch.setenv("PULP_RISCV_GCC_TOOLCHAIN", str(pulp))
    pulp_backend = make_backend("gvsoc:xpulpv2", **kit)
    assert pulp_backend.target(8, (2, 4, 8)).name == "gvsoc-xpulpv2-pulp-gcc"
    assert kit_params != pulp_backend.cache_params()
