"""The gvsoc backend's toolchain naming, the kit runner path (layers.json, checksums) and cached failures."""

from __future__ import annotations

import json
import stat

import pytest

from fb_profile import make_backend, sweep
from fb_profile._gvsoc import cycles_from_layers_json
from fb_profile._sweep import SweepPlan
from fb_profile._toolchain import classify
from fb_schema import LayerType
from fb_schema.topologies import tinynet


def _exe(path, text):
    path.write_text("#!/bin/bash\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def test_toolchain_profiles():
    assert classify("riscv64-unknown-elf-gcc () 12.2.0", has_shim=True) == "kit-gcc12"
    assert classify("riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622", has_shim=False) == "pulp-gcc"
    assert classify("riscv64-unknown-elf-gcc () 13.1.0", has_shim=False) == "gcc13"


@pytest.fixture
def kit(tmp_path):
    """A stand-in kit: a GCC 12 behind the shim, a runner that writes layers.json, an fb-deploy stand-in.

    The runner's cycles are 1000*b_in + 10*b_wt (read from the model dir); b_wt == 2 fails the output checksum.
    It counts its calls in calls.txt.
    """
    (tmp_path / "toolchain" / "bin").mkdir(parents=True)
    (tmp_path / "toolchain" / "include").mkdir()
    (tmp_path / "toolchain" / "include" / "pulp_shim.h").write_text("")
    _exe(tmp_path / "toolchain" / "bin" / "riscv32-unknown-elf-gcc", 'echo "riscv64-unknown-elf-gcc () 12.2.0"\n')
    deploy = _exe(tmp_path / "fb-deploy", "a=0; w=0; out=\n"
                  "while [ $# -gt 0 ]; do case $1 in --b-in) a=$2;; --b-wt) w=$2;; -o) out=$2;; esac; shift; done\n"
                  'mkdir -p "$out" && echo "$a $w" > "$out/bits"\n'
                  'echo \'{"dory_layer": "L1"}\' > "$out/layer.json"\n')  # fmt: skip
    runner = _exe(tmp_path / "run.sh", 'echo x >> "$(dirname "$0")/calls.txt"; read a w < "$1/bits"; mkdir -p "$2"\n'
                  'ok=ok; [ "$w" = 2 ] && ok=failed\n'
                  'cat > "$2/layers.json" <<J\n'
                  '{"layers": [{"name": "L0", "cycles": 5, "checksum": "ok", "checks": {}},\n'
                  ' {"name": "L1", "cycles": $((1000*a + 10*w)), "checksum": "$ok", "checks": {"output": "$ok"}}],\n'
                  ' "final": {"cycles": 1}, "ok": $([ $ok = ok ] && echo true || echo false)}\nJ\n'
                  '[ $ok = ok ]\n')  # fmt: skip
    return {"kit": str(tmp_path), "runner": runner, "fb_deploy": deploy}


def test_kit_runner_points_toolchain_name_and_cached_failures(kit, tmp_path):
    cache = tmp_path / "cache"
    table = sweep(tinynet(), "gvsoc:xpulpv2", (2, 8), cache_dir=cache, progress=False, **kit)
    assert table.target.name == "gvsoc-xpulpv2-kit-gcc12"
    conv = LayerType.conv2d(8, 8, 1, 8, kernel=3).key
    assert table.entries[(conv, 8, 8)] == 8080 and table.entries[(conv, 2, 8)] == 2080
    assert (conv, 8, 2) not in table.entries
    errors = {(f["layer_type"], f["b_in"], f["b_wt"]): f["error"] for f in table.failed}
    assert errors[(conv, 8, 2)] == "SimulationError: checksum failed on GVSOC: L1 (output)"
    prov = table.provenance
    assert prov["toolchain"]["profile"] == "kit-gcc12" and prov["flow"] == "mixed-sw"
    assert prov["points"]["measured"] == len(table.entries) and prov["points"]["failed"] == len(table.failed)
    calls = (tmp_path / "calls.txt").read_text().count("x")
    # Resumed: nothing re-runs, failures included; --retry-failed re-runs only the failures (twice each: retry).
    again = sweep(tinynet(), "gvsoc:xpulpv2", (2, 8), cache_dir=cache, progress=False, **kit)
    assert again.entries == table.entries and again.failed == table.failed
    assert (tmp_path / "calls.txt").read_text().count("x") == calls
    sweep(tinynet(), "gvsoc:xpulpv2", (2, 8), cache_dir=cache, progress=False, plan=SweepPlan(retry_failed=True), **kit)
    assert (tmp_path / "calls.txt").read_text().count("x") == calls + len(table.failed)  # deterministic: no retry


def test_plan_subsets_and_cached_only(kit, tmp_path):
    cache = tmp_path / "cache"
    conv = LayerType.conv2d(8, 8, 1, 8, kernel=3).key
    part = sweep(tinynet(), "gvsoc:xpulpv2", (2, 8), cache_dir=cache, progress=False,
                 plan=SweepPlan(pairs=((8, 8),), types=(conv,)), **kit)  # fmt: skip
    assert list(part.entries) == [(conv, 8, 8)]
    assert part.provenance["points"]["not_measured"] == part.provenance["points"]["total"] - 1
    only = sweep(tinynet(), "gvsoc:xpulpv2", (2, 8), cache_dir=cache, progress=False,
                 plan=SweepPlan(cached_only=True), **kit)  # fmt: skip
    assert only.entries == part.entries and only.provenance["this_run"]["now"] == 0
    with pytest.raises(ValueError, match="--types: 'nope' is not a layer type of this network"):
        sweep(tinynet(), "gvsoc:xpulpv2", cache_dir=cache, progress=False, plan=SweepPlan(types=("nope",)), **kit)


def test_two_toolchains_never_share_cached_points(kit, tmp_path):
    kit_backend = make_backend("gvsoc:xpulpv2", **kit)
    pulp = tmp_path / "pulp"
    (pulp / "bin").mkdir(parents=True)
    _exe(pulp / "bin" / "riscv32-unknown-elf-gcc", 'echo "riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622"\n')
    pulp_backend = make_backend("gvsoc:xpulpv2", **{**kit, "toolchain": str(pulp)})
    assert pulp_backend.target(8, (2, 4, 8)).name == "gvsoc-xpulpv2-pulp-gcc"
    assert kit_backend.cache_params() != pulp_backend.cache_params()


def test_layers_json_errors(tmp_path):
    with pytest.raises(RuntimeError, match="GVSOC run failed: run_dory_app.sh: ERROR: build failed"):
        cycles_from_layers_json(tmp_path / "none.json", "L1", 3, "run_dory_app.sh: ERROR: build failed\n")
    path = tmp_path / "layers.json"
    path.write_text(json.dumps({"layers": [{"name": "L0", "cycles": 3, "checksum": "ok"}], "final": None}))
    with pytest.raises(RuntimeError, match="did not finish"):
        cycles_from_layers_json(path, "L0", 2)
    path.write_text(json.dumps({"layers": [{"name": "L0", "cycles": 3, "checksum": "ok"}], "final": {}, "ok": True}))
    assert cycles_from_layers_json(path, "L0") == 3
    with pytest.raises(RuntimeError, match="no cycle count for DORY layer 'L9'; found L0"):
        cycles_from_layers_json(path, "L9")
