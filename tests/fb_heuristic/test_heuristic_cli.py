"""The fb-heuristic command line, run through click's CliRunner."""

import dataclasses
import json

import pytest
from click.testing import CliRunner

from fb_heuristic._cli import main
from fb_schema import LatencyTable, NetConfig, Target
from fb_schema.topologies import tinynet

# 8b/8b is the fastest pair (XpulpV2-like); latencies scale with the layer's index
LAT = {
    (2, 2): 300,
    (2, 4): 260,
    (2, 8): 210,
    (4, 2): 280,
    (4, 4): 180,
    (4, 8): 140,
    (8, 2): 230,
    (8, 4): 150,
    (8, 8): 100,
}


def _table():
    net = NetConfig.homogeneous(tinynet(), 4, 4)
    entries = {}
    for i, (key, t) in enumerate(net.layer_types.items()):
        for a in (2, 4, 8):
            for w in (2, 4, 8) if t.configurable else (None,):
                entries[(key, a, w)] = (i + 1) * LAT[(a, w)] if t.configurable else 5
    return LatencyTable(Target("pulp-xpulpv2", "xpulpv2"), net.layer_types, entries)


@pytest.fixture
def files(tmp_path):
    table = _table()
    table.save(tmp_path / "pulp-xpulpv2.json")
    c8 = dataclasses.replace(NetConfig.homogeneous(tinynet(), 8, 8), metrics={"val_accuracy": 0.90})
    c4 = dataclasses.replace(NetConfig.homogeneous(tinynet(), 4, 4), metrics={"val_accuracy": 0.885})
    c2 = dataclasses.replace(NetConfig.homogeneous(tinynet(), 2, 2), metrics={"val_accuracy": 0.80})
    for name, cfg in (("c8", c8), ("c4", c4), ("c2", c2)):
        cfg.save(tmp_path / f"{name}.json")
    return tmp_path


def _run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _ok(*args):
    result = _run(*args)
    assert result.exit_code == 0, result.output
    return result


def _fails(*args, code=None):
    result = _run(*args)
    assert result.exit_code != 0
    if code is not None:
        assert result.exit_code == code
    assert "Traceback" not in result.output
    assert isinstance(result.exception, SystemExit)  # a handled error, not a crash
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


def test_help():
    out = _ok("--help").output
    for command in ("apply", "latency", "select", "diff"):
        assert command in out
    assert "0.1.0" in _ok("--version").output


def test_apply(files):
    result = _ok("apply", files / "c4.json", files / "pulp-xpulpv2.json", "-o", files / "out" / "fb.json")
    out = NetConfig.load(files / "out" / "fb.json")
    assert [str(lc.precision) for lc in out.layers] == ["8b/8b", "8b/8b", "8b/-", "8b/-", "8b/8b"]
    parent = NetConfig.load(files / "c4.json")
    assert out.provenance["method"] == "fb"
    assert out.provenance["parent"] == parent.sha256()
    assert out.provenance["table_sha256"] == LatencyTable.load(files / "pulp-xpulpv2.json").sha256()
    # conv0 100 + dw1 2*100 + add 5 + pool 5 + fc 5*100
    assert out.metrics["latency"] == {"pulp-xpulpv2": 810}
    assert "2 layers changed" in result.output
    assert "dw1" in result.output and "total" in result.output


def test_apply_json(files):
    result = _ok("apply", files / "c4.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json", "--json")
    rows = json.loads(result.stdout)
    assert [(r["name"], r["before"], r["after"], r["changed"]) for r in rows] == [
        ("conv0", "8b/8b", "8b/8b", False),
        ("dw1", "4b/4b", "8b/8b", True),
        ("add1", "8b/-", "8b/-", False),
        ("pool", "8b/-", "8b/-", False),
        ("fc", "4b/4b", "8b/8b", True),
    ]
    assert rows[1]["latency_before"] == 2 * 180 and rows[1]["latency_after"] == 2 * 100
    assert rows[4]["latency_before"] == 5 * 180 and rows[4]["latency_after"] == 5 * 100


def test_apply_allowed(files):
    # (4,4) is the fastest pair here; without 4 bits the best pair above (2,2) is (2,8)
    table = _table()
    lat = dict(LAT) | {(4, 4): 90, (8, 8): 400}
    entries = {k: (v if k[2] is None else v // LAT[k[1:]] * lat[k[1:]]) for k, v in table.entries.items()}
    dataclasses.replace(table, entries=entries).save(files / "t.json")
    _ok("apply", files / "c2.json", files / "t.json", "-o", files / "full.json")
    full = NetConfig.load(files / "full.json")
    assert [str(lc.precision) for lc in full.layers] == ["8b/8b", "4b/4b", "8b/-", "8b/-", "4b/4b"]
    _ok("apply", files / "c2.json", files / "t.json", "-o", files / "fb.json", "--allowed", "2,8")
    out = NetConfig.load(files / "fb.json")
    assert [str(lc.precision) for lc in out.layers] == ["8b/8b", "2b/8b", "8b/-", "8b/-", "2b/8b"]
    assert out.metrics["latency"]["pulp-xpulpv2"] == 400 + 2 * 210 + 5 + 5 + 5 * 210


def test_apply_bits_outside_allowed(files):
    doc = json.loads((files / "c2.json").read_text())
    doc["layers"][1]["b_in"] = 3  # neither the table's widths nor --allowed know 3 bits
    (files / "c3.json").write_text(json.dumps(doc))
    error = _fails("apply", files / "c3.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json", "--allowed", "4,8")
    assert "c3.json" in error and "layers[1].b_in" in error and "[2, 4, 8]" in error
    assert not (files / "fb.json").exists()


def test_apply_allowed_restricts_moves_not_inputs(files):
    # A 2-bit config may be improved under --allowed 4,8: its layers only move to 4- or 8-bit pairs or stay.
    _ok("apply", files / "c2.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json", "--allowed", "4,8")
    before, out = NetConfig.load(files / "c2.json"), NetConfig.load(files / "fb.json")
    moved = [(a, b) for a, b in zip(before.layers, out.layers) if a.precision != b.precision]
    assert moved, "the xpulpv2-like table makes higher pairs faster, so some layer must move"
    assert all(b.b_in in (4, 8) and b.b_wt in (4, 8) for a, b in moved if not a.b_in_fixed)


def test_apply_bad_allowed_value(files):
    error = _fails("apply", files / "c4.json", files / "pulp-xpulpv2.json", "-o", files / "x.json", "--allowed", "a,b")
    assert "--allowed" in error


def test_apply_missing_entries(files):
    doc = json.loads((files / "pulp-xpulpv2.json").read_text())
    fc_key = "linear_1x1x8_o10_k1x1_s1x1_p0.0.0.0_g1"
    doc["entries"] = [e for e in doc["entries"] if not (e["layer_type"] == fc_key and e["b_in"] == 8)]
    (files / "partial.json").write_text(json.dumps(doc))
    error = _fails("apply", files / "c4.json", files / "partial.json", "-o", files / "fb.json", code=1)
    assert fc_key in error and "b_in=8" in error and "--skip-missing" in error
    assert not (files / "fb.json").exists()
    _ok("apply", files / "c4.json", files / "partial.json", "-o", files / "fb.json", "--skip-missing")
    out = NetConfig.load(files / "fb.json")
    assert [str(lc.precision) for lc in out.layers] == ["8b/8b", "8b/8b", "8b/-", "8b/-", "4b/4b"]


def test_apply_missing_file(files):
    error = _fails("apply", files / "nope.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json", code=2)
    assert "CONFIG" in error and "nope.json" in error


def test_apply_malformed_config(files):
    doc = json.loads((files / "c4.json").read_text())
    doc["layers"][4]["b_wt"] = None
    (files / "bad.json").write_text(json.dumps(doc))
    error = _fails("apply", files / "bad.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json", code=1)
    assert error.startswith(f"Error: {files / 'bad.json'}: layers[4].b_wt: ")


def test_apply_config_not_json(files):
    (files / "bad.json").write_text("{nope")
    error = _fails("apply", files / "bad.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json", code=1)
    assert "bad.json" in error and "<line 1>" in error and "valid JSON" in error


def test_apply_malformed_table(files):
    doc = json.loads((files / "pulp-xpulpv2.json").read_text())
    doc["entries"][0]["latency"] = -1
    (files / "bad-table.json").write_text(json.dumps(doc))
    error = _fails("apply", files / "c4.json", files / "bad-table.json", "-o", files / "fb.json", code=1)
    assert "bad-table.json" in error and "entries[0].latency" in error


def test_latency(files):
    result = _ok("latency", files / "c4.json", files / "pulp-xpulpv2.json")
    # conv0 100 + dw1 2*180 + add 5 + pool 5 + fc 5*180
    assert "1,370 cycles on pulp-xpulpv2" in result.output
    data = json.loads(_ok("latency", files / "c8.json", files / "pulp-xpulpv2.json", "--json").stdout)
    assert data == {"config": str(files / "c8.json"), "target": "pulp-xpulpv2", "latency": 100 + 200 + 10 + 500}


def test_latency_missing_file(files):
    error = _fails("latency", files / "c4.json", files / "absent.json")
    assert "TABLE" in error and "absent.json" in error


def test_select_latency_target_json(files):
    args = ["select", files / "c4.json", files / "c2.json", "--table", files / "pulp-xpulpv2.json"]
    # latencies: c8 810, c4 1370, c2 100 + 2*300 + 10 + 5*300 = 2210 (XpulpV2-like: lower bits are slower)
    data = json.loads(_ok(*args, "--baseline", files / "c8.json", "--latency-target", 2000, "--json").stdout)
    assert data["selected"] == str(files / "c8.json")
    assert data["latency"] == 810 and data["baseline_latency"] == 810 and data["accuracy"] == 0.90
    assert [f["config"] for f in data["front"]] == [str(files / "c8.json")]
    data = json.loads(_ok(*args, "--baseline", files / "c2.json", "--latency-target", 1500, "--json").stdout)
    assert data["selected"] == str(files / "c4.json") and data["latency"] == 1370


def test_select_accuracy_margin(files):
    (files / "fast.json").write_text((files / "c4.json").read_text())
    # a monotone table makes lower precision faster
    table = _table()
    mono = {k: (10 * k[1] + 10 * (k[2] or 0) if k[2] else 5) for k in table.entries}
    dataclasses.replace(table, entries=mono).save(files / "mono.json")
    args = [
        "select",
        files / "c4.json",
        files / "c2.json",
        "--table",
        files / "mono.json",
        "--baseline",
        files / "c8.json",
    ]
    data = json.loads(_ok(*args, "--max-accuracy-drop", 1.5, "--json").stdout)
    assert data["selected"] == str(files / "c4.json")  # 0.885 >= 0.885; 330 cycles
    assert data["latency"] == 160 + 80 + 80 + 10
    assert [f["latency"] for f in data["front"]] == [250, 330, 490]
    data = json.loads(_ok(*args, "--max-accuracy-drop", 0.5, "--json").stdout)
    assert data["selected"] == str(files / "c8.json")
    text = _ok(*args, "--max-accuracy-drop", 15).output
    assert "Pareto front" in text
    assert f"selected: {files / 'c2.json'}" in text
    assert "<= selected" in text


def test_select_needs_one_criterion(files):
    args = ["select", files / "c4.json", "--table", files / "pulp-xpulpv2.json", "--baseline", files / "c8.json"]
    assert "exactly one" in _fails(*args, code=2)
    assert "exactly one" in _fails(*args, "--latency-target", 5, "--max-accuracy-drop", 1, code=2)


def test_select_unreachable_target(files):
    args = ["select", files / "c4.json", "--table", files / "pulp-xpulpv2.json", "--baseline", files / "c8.json"]
    error = _fails(*args, "--latency-target", 100, code=1)
    assert "latency target 100" in error and "fastest: 810" in error


def test_select_config_without_accuracy(files):
    NetConfig.homogeneous(tinynet(), 4, 4).save(files / "noacc.json")
    args = ["select", files / "noacc.json", "--table", files / "pulp-xpulpv2.json", "--baseline", files / "c8.json"]
    error = _fails(*args, "--latency-target", 5000, code=1)
    assert "metrics.val_accuracy" in error


def test_diff(files):
    _ok("apply", files / "c4.json", files / "pulp-xpulpv2.json", "-o", files / "fb.json")
    text = _ok("diff", files / "c4.json", files / "fb.json", "--table", files / "pulp-xpulpv2.json").output
    assert "total" in text and "1,370" in text and "810" in text
    changed = _ok("diff", files / "c4.json", files / "fb.json", "--changed").output.splitlines()
    assert [line.split()[0] for line in changed[1:]] == ["dw1", "fc"]
    rows = json.loads(
        _ok("diff", files / "c4.json", files / "fb.json", "--table", files / "pulp-xpulpv2.json", "--json").stdout
    )
    assert sum(r["latency_before"] for r in rows) == 1370
    assert sum(r["latency_after"] for r in rows) == 810
    assert [r["name"] for r in rows if r["changed"]] == ["dw1", "fc"]


def test_diff_different_networks(files):
    from fb_schema.topologies import digitsnet

    NetConfig.homogeneous(digitsnet(), 4, 4).save(files / "digits.json")
    error = _fails("diff", files / "c4.json", files / "digits.json", code=1)
    assert "differ in layers" in error


def test_diff_malformed(files):
    doc = json.loads((files / "c4.json").read_text())
    doc["schema"] = "freebits/net-config/v9"
    (files / "v9.json").write_text(json.dumps(doc))
    error = _fails("diff", files / "c4.json", files / "v9.json", code=1)
    assert "v9.json: schema:" in error
