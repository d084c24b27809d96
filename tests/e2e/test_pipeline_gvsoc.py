"""The pipeline's GVSOC step (config ``"gvsoc": True``): flows per pick, the report section, and a real run of
one deployed network where the GVSOC kit is configured."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from types import SimpleNamespace

import click
import pytest
from conftest import ROOT, needs_gvsoc_kit

sys.path.insert(0, str(ROOT / "tools"))

from fbpipe import gvsoc  # noqa: E402

SELECTION = {
    "pulp-model:xpulpv2": {"0.5pp": "fb-a", "1.5pp": "fb-b"},
    "pulp-model:xpulpnn1": {"0.5pp": "fb-a"},
    "pulp-model:xpulpnn2": {"0.5pp": "fb-c"},
}


def test_flows_follow_the_isas_that_picked_a_network():
    assert gvsoc.flows_of("fb-a", SELECTION) == ["mixed-sw", "mixed-hw"]
    assert gvsoc.flows_of("fb-b", SELECTION) == ["mixed-sw"]
    assert gvsoc.flows_of("fb-c", SELECTION) == ["mixed-hw"]  # XpulpNNv2: correctness with the XpulpNN kernels
    assert gvsoc.flows_of("8b", SELECTION) == ["mixed-sw"]  # baselines: XpulpV2
    assert gvsoc.flows_of("fb-pulp-xpulpnn1--4b", SELECTION, "pulp-model:xpulpnn1") == ["mixed-hw"]  # made for it
    assert gvsoc.flows_of("ks-pulp-xpulpv2-0.9", SELECTION, "pulp-model:xpulpv2") == ["mixed-sw"]
    # the target the network was made for, not what its id looks like
    assert gvsoc.flows_of("fb-pulp-xpulpv2--4b", SELECTION, "pulp-model:xpulpnn1") == ["mixed-hw"]
    assert gvsoc.flows_of("fb-pulp-xpulpnn1--4b", SELECTION) == ["mixed-sw"]


def test_report_section():
    rec = {"flow": "mixed-sw", "target": "pulp-open", "checksums_ok": 10, "layers": 10, "cycles": 443711,
           "table_cycles": 221000, "table_isa": "xpulpv2"}  # fmt: skip
    lines = gvsoc.report_lines({"8b": {"gvsoc": [rec]}, "4b": {}})
    assert lines[1] == "## On GVSOC (DORY, 8 cores)"
    assert lines[-1] == "| `8b` | mixed-sw | pulp-open | 10/10 | 443,711 | 221,000 (xpulpv2) | 2.01 |"
    assert gvsoc.report_lines({"8b": {}}) == []


@needs_gvsoc_kit
def test_run_all_on_gvsoc(tmp_path):
    """The fixture's network exported now: every layer passes; its old export is refused, naming the add."""
    from fb_deploy import IntegerNetwork, export_dory

    fixture = ROOT / "tests" / "fixtures" / "gvsoc" / "digitsnet-8b-f1924e9" / "model"
    new = export_dory(IntegerNetwork.load(fixture / "integer_network.json"), tmp_path / "new")
    cfg = SimpleNamespace(allowed_bits=(2, 4, 8), targets=(), target_slug=str)
    run = SimpleNamespace(tables=dict, cfg=cfg, path=Path, rel=str)
    deployed = {"8b": {"dir": str(new)}}
    gvsoc.run_all(run, deployed, {"8b": {"config": ""}}, {})
    [rec] = deployed["8b"]["gvsoc"]
    assert (rec["flow"], rec["checksums_ok"], rec["layers"], rec["error"]) == ("mixed-sw", 10, 10, None)
    assert rec["cycles"] > 0 and rec["table_cycles"] is None
    old = tmp_path / "old"
    shutil.copytree(fixture, old)
    with pytest.raises(click.ClickException, match="gvsoc: 8b .mixed-sw.: .*residual-add-order.*Addition7"):
        gvsoc.run_all(run, {"8b": {"dir": str(old)}}, {"8b": {"config": ""}}, {})
