"""``fb-deploy gvsoc`` on the real DORY + PULP SDK + GVSOC (the GVSOC kit); skipped where it is not configured.

Configure with ``source PREFIX/env.sh pulp-open`` (it exports DORY_HOME, DORY_PYTHON, PULP_SDK_HOME, the
RISC-V GCC and puts gvsoc on PATH).
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner
from conftest import needs_gvsoc_kit as needs_kit

from fb_deploy._cli import main

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "gvsoc" / "digitsnet-8b-f1924e9"


@needs_kit
def test_old_export_fails_on_gvsoc_naming_the_add(tmp_path):
    out = tmp_path / "run"
    res = CliRunner().invoke(main, ["gvsoc", str(OLD / "model"), "--no-check", "-o", str(out)])
    assert res.exit_code == 1
    error = res.output.strip().splitlines()[-1]
    assert error.endswith("Addition7: checksum failed: expected 457263, computed 314472"), res.output
    cycles = json.loads((out / "cycles.json").read_text())
    assert [x["checksum"] for x in cycles["layers"]] == ["ok"] * 7 + ["failed"] * 3
    assert cycles["layers"][0]["expected_checksum"] == 97443  # from DORY's network.h for a passing layer
    assert cycles["total_cycles"] == sum(x["cycles"] for x in cycles["layers"])  # DORY sums the layer counters
    assert cycles["network_layers"] == 10 and cycles["checksums_ok"] == 7
    tools = cycles["tools"]
    assert all(len(tools[k] or "") == 40 for k in ("gvsoc", "pulp_sdk", "dory")), tools
    assert tools["toolchain"]["name"] == "riscv32-unknown-elf-gcc" and tools["toolchain"]["version"]
