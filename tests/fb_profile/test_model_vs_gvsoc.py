"""docs/model-vs-gvsoc.md states what the committed GVSOC tables give: re-run the calibration and the comparison."""

from __future__ import annotations

import sys

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import model_vs_gvsoc as mvg  # noqa: E402


def test_doc_numbers_match_a_fresh_comparison():
    res = mvg.results()
    section = mvg.doc_section(mvg.DOC.read_text())
    assert section == mvg.numbers(res), "docs/model-vs-gvsoc.md is stale: run tools/model_vs_gvsoc.py"
    for isa, r in res.items():
        cal = r["calibration"]
        assert len(cal.fitted) <= 8, isa
        assert cal.after["median"] < cal.before["median"], isa  # the fit helps on the fit set itself
        held_out = set(r["mnv1"].entries)
        assert held_out and not held_out & set(mvg.measured("digitsnet", isa).entries)  # MobileNetV1 is held out


def test_tables_are_measured_on_gvsoc_with_provenance():
    for isa in mvg.ISAS:
        for network in ("digitsnet", "mnv1"):
            table = mvg.measured(network, isa)
            assert table.target.backend == "gvsoc" and table.target.name == f"gvsoc-{isa}-kit-gcc12"
            prov = table.provenance
            assert prov["toolchain"]["profile"] == "kit-gcc12" and prov["commits"]["dory"]
            assert prov["points"]["measured"] == len(table.entries)
            assert prov["points"]["failed"] == len(table.failed)
            assert all(f["error"] for f in table.failed)
