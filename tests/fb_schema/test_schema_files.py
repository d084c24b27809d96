"""NetConfig, LatencyTable and QuantizedNetwork: save/load round trips, canonical sha256, atomic writes."""

import dataclasses
import hashlib
import json
import shutil

import pytest
from conftest import FIXTURES

from fb_schema import (
    LATENCY_TABLE_SCHEMA,
    NET_CONFIG_SCHEMA,
    LatencyTable,
    LayerType,
    NetConfig,
    Precision,
    QuantizedNetwork,
    Target,
    canonical_json,
    npz_shapes,
    sha256_of,
    write_atomic,
)
from fb_schema.topologies import digitsnet, mobilenetv2, tinynet


def _config():
    net = NetConfig.homogeneous(digitsnet(), 4, 2, mu=0.01, seed=3)
    net = net.with_precisions({"pw1": Precision(2, 8), "dw3": Precision(8, 4)})
    metrics = {
        "val_accuracy": 0.9375,
        "accuracy_stage": "tqt",
        "latency": {"demo-xpulpv2": 12345},
        "bops": net.bops(),
        "sensitivity": {"pw1": {"2,8": 0.5}},
        "my_extra_metric": [1, 2, 3],
    }
    prov = {**net.provenance, "checkpoint": "runs/x/ckpt", "my_note": {"nested": True}}
    return dataclasses.replace(net, metrics=metrics, provenance=prov)


def _table(layer_types):
    entries = {}
    for i, (key, t) in enumerate(layer_types.items()):
        for a in (2, 4, 8):
            for w in (2, 4, 8) if t.configurable else (None,):
                entries[(key, a, w)] = 100 * (i + 1) + 10 * a + (w or 0)
    failed = [{"layer_type": next(iter(layer_types)), "b_in": 2, "b_wt": 2, "error": "L1 overflow"}]
    return LatencyTable(Target("demo-xpulpv2", "xpulpv2", backend_version="1.0"), layer_types, entries, failed)


# -- NetConfig ------------------------------------------------------------------------------------------------------
def test_netconfig_round_trip(tmp_path):
    cfg = _config()
    cfg.save(tmp_path / "c.json")
    back = NetConfig.load(tmp_path / "c.json")
    assert back == cfg
    assert back.sha256() == cfg.sha256()
    assert back.provenance["my_note"] == {"nested": True}
    assert back.metrics["my_extra_metric"] == [1, 2, 3]
    raw = json.loads((tmp_path / "c.json").read_text())
    assert raw["schema"] == NET_CONFIG_SCHEMA == "freebits/net-config/v1"
    assert raw["layers"][7] == {
        "name": "add3",
        "layer_type": "add_8x8x64_o64_k1x1_s1x1_p0.0.0.0_g1",
        "b_in": 8,
        "b_wt": None,
        "b_in_fixed": True,
    }
    assert raw["layers"][0]["b_in"] == 8 and raw["layers"][0]["b_wt"] == 8 and raw["layers"][0]["b_in_fixed"]


def test_netconfig_sha256_is_canonical(tmp_path):
    cfg = _config()
    identity = {k: v for k, v in cfg.to_json().items() if k not in ("provenance", "metrics")}
    expected = hashlib.sha256(json.dumps(identity, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    assert cfg.sha256() == expected == sha256_of(identity)
    # the same document written with another key order and indentation hashes the same
    doc = cfg.to_json()
    reordered = dict(reversed(list(doc.items())))
    reordered["provenance"] = dict(reversed(list(doc["provenance"].items())))
    (tmp_path / "r.json").write_text(json.dumps(reordered, indent=7))
    assert NetConfig.load(tmp_path / "r.json").sha256() == expected
    # any change of a precision changes it; metrics and provenance do not (a config's identity does not drift)
    assert cfg.with_precisions({"fc": Precision(8, 8)}).sha256() != cfg.with_precisions({}).sha256()
    assert cfg.with_metrics(val_accuracy=0.5, bops=1).sha256() == expected
    assert cfg.with_precisions({}, method="fb", seed=3).sha256() == expected


def test_with_metrics_returns_a_copy():
    cfg = _config()
    tagged = cfg.with_metrics(val_accuracy=0.75, new_metric=1)
    assert tagged.metrics == {**cfg.metrics, "val_accuracy": 0.75, "new_metric": 1}
    assert cfg.metrics["val_accuracy"] == 0.9375 and "new_metric" not in cfg.metrics


def test_canonical_json_form():
    assert canonical_json({"b": [1, {"d": None, "c": 1.5}], "a": True}) == '{"a":true,"b":[1,{"c":1.5,"d":null}]}'


def test_golden_config_sha256_is_pinned():
    cfg = NetConfig.load(FIXTURES / "golden_tinynet.config.json")
    golden = json.loads((FIXTURES / "golden_tinynet.json").read_text())
    assert cfg.sha256() == golden["config_sha256"]
    assert [str(lc.precision) for lc in cfg.layers] == ["8b/8b", "4b/4b", "8b/-", "8b/-", "4b/4b"]


def test_netconfig_homogeneous_and_bops():
    cfg = NetConfig.homogeneous(tinynet(), 4, 4)
    assert [str(lc.precision) for lc in cfg.layers] == ["8b/8b", "4b/4b", "8b/-", "8b/-", "4b/4b"]
    assert cfg.provenance == {"method": "homogeneous", "parent": None, "bits": [4, 4]}
    # conv0: 8*8*8*9 MACs * 8 * 8, dw1: 8*8*8*9 * 4 * 4, fc: 8*10 * 4 * 4
    assert cfg.bops() == 4608 * 64 + 4608 * 16 + 80 * 16 == 369_920
    with pytest.raises(ValueError, match="conv0: b_in is fixed"):
        cfg.with_precisions({"conv0": Precision(4, 8)})


def test_netconfig_allowed_bits_is_data(tmp_path):
    cfg = NetConfig.homogeneous(tinynet(), 3, 3)
    cfg.save(tmp_path / "c.json")
    assert NetConfig.load(tmp_path / "c.json", allowed_bits=(3, 8)).layer("dw1").precision == Precision(3, 3)


# -- LatencyTable ---------------------------------------------------------------------------------------------------
def test_latency_table_round_trip(tmp_path):
    table = _table(tinynet().layer_types())
    table.save(tmp_path / "demo-xpulpv2.json")
    back = LatencyTable.load(tmp_path / "demo-xpulpv2.json")
    assert back == table
    assert back.sha256() == table.sha256()
    raw = json.loads((tmp_path / "demo-xpulpv2.json").read_text())
    assert raw["schema"] == LATENCY_TABLE_SCHEMA
    assert raw["target"] == {
        "name": "demo-xpulpv2",
        "isa": "xpulpv2",
        "cores": 8,
        "l1_bytes": 65536,
        "l2_bytes": 524288,
        "backend": "pulp-model",
        "backend_version": "1.0",
        "unit": "cycles",
        "b_out": 8,
        "allowed_bits": [2, 4, 8],
    }
    assert len(raw["entries"]) == 3 * 9 + 2 * 3
    assert raw["failed"] == table.failed
    add_key = "add_8x8x8_o8_k1x1_s1x1_p0.0.0.0_g1"
    assert back.latency(add_key, Precision(4, None)) == 300 + 40
    assert back.pairs(add_key) == [Precision(2, None), Precision(4, None), Precision(8, None)]
    assert back.latency("linear_1x1x8_o10_k1x1_s1x1_p0.0.0.0_g1", Precision(2, 8)) == 500 + 20 + 8


def test_latency_table_sha256_independent_of_entry_order():
    table = _table(mobilenetv2(0.35, 32).layer_types())
    shuffled = dataclasses.replace(table, entries=dict(reversed(list(table.entries.items()))))
    assert shuffled.sha256() == table.sha256()
    assert table.sha256() == hashlib.sha256(canonical_json(table.to_json()).encode()).hexdigest()
    changed = dict(table.entries)
    changed[next(iter(changed))] += 1
    assert dataclasses.replace(table, entries=changed).sha256() != table.sha256()


def test_latency_table_sha256_leaves_out_provenance():
    table = _table(mobilenetv2(0.35, 32).layer_types())
    dated = dataclasses.replace(table, provenance={"date": "2026-12-01", "seconds": 12.5})
    assert dated.sha256() == table.sha256() and dated == table
    assert "provenance" in dated.to_json()  # still written to the file, just not part of the identity
    failed = dataclasses.replace(table, failed=[{"layer_type": "x", "b_in": 2, "b_wt": 2, "reason": "hang"}])
    assert failed.sha256() != table.sha256()


# -- QuantizedNetwork -----------------------------------------------------------------------------------------------
def test_golden_quantized_network_loads():
    qn = QuantizedNetwork.load(FIXTURES / "golden_tinynet.json")
    assert qn.network == "tinynet"
    assert [n["op"] for n in qn.nodes] == ["conv2d", "depthwise_conv2d", "add", "avgpool", "linear"]
    assert qn.npz_path == FIXTURES / "golden_tinynet.npz"
    assert qn.input["shape_nhwc"] == [1, 8, 8, 1]
    assert qn.layer_type(qn.nodes[1]) == LayerType.depthwise(8, 8, 8)
    # the fixture's nodes follow the tinynet topology
    assert [n["layer_type"] for n in qn.nodes] == list(tinynet().layer_types())
    shapes = {k: shape for k, (_, shape) in npz_shapes(qn.npz_path).items()}
    assert shapes["dw1.w"] == (3, 3, 1, 8)
    assert shapes["fc.w"] == (8, 10)
    assert shapes["ref_logits"] == (4, 10)
    assert npz_shapes(qn.npz_path)["conv0.w"][0] == "<f4"


def test_quantized_network_round_trip(tmp_path):
    shutil.copy(FIXTURES / "golden_tinynet.npz", tmp_path / "net.npz")
    qn = QuantizedNetwork.load(FIXTURES / "golden_tinynet.json")
    qn.save(tmp_path / "net.json")
    back = QuantizedNetwork.load(tmp_path / "net.json")
    assert back.doc == qn.doc
    assert back.npz_path == tmp_path / "net.npz"


def test_npz_shapes_matches_numpy(tmp_path):
    np = pytest.importorskip("numpy")
    arrays = {"a": np.zeros((2, 3), np.float32), "b.c": np.ones((5,), np.int8), "s": np.float64(1.0)}
    np.savez(tmp_path / "x.npz", **arrays)
    np.savez_compressed(tmp_path / "y.npz", **arrays)
    for name in ("x.npz", "y.npz"):
        assert npz_shapes(tmp_path / name) == {"a": ("<f4", (2, 3)), "b.c": ("|i1", (5,)), "s": ("<f8", ())}


# -- atomic writes --------------------------------------------------------------------------------------------------
def test_atomic_write_leaves_no_temp_file_when_serialization_fails(tmp_path):
    target = tmp_path / "c.json"
    target.write_text("old\n")
    bad = dataclasses.replace(_config(), metrics={"val_accuracy": 0.5, "blob": object()})
    with pytest.raises(TypeError):
        bad.save(target)
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.json"]


def test_write_atomic_cleans_up_when_the_write_fails(tmp_path):
    target = tmp_path / "t.txt"
    target.write_text("old\n")

    with pytest.raises(TypeError):
        write_atomic(target, 12345)  # neither str nor bytes: the write itself fails, after the temp file exists
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt"]
    write_atomic(tmp_path / "sub" / "b.bin", b"\x00\x01")
    assert (tmp_path / "sub" / "b.bin").read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in (tmp_path / "sub").iterdir()) == ["b.bin"]
