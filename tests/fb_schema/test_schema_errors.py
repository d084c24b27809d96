"""One test per SchemaError case: each message reads "<file>: <field.path>: <expected>"."""

import json
import shutil
from pathlib import Path

import pytest

from fb_schema import LatencyTable, NetConfig, QuantizedNetwork, SchemaError, Target
from fb_schema.topologies import tinynet

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
CONV = "conv2d_8x8x1_o8_k3x3_s1x1_p1.1.1.1_g1"
DW = "depthwise_conv2d_8x8x8_o8_k3x3_s1x1_p1.1.1.1_g8"
ADD = "add_8x8x8_o8_k1x1_s1x1_p0.0.0.0_g1"


def _config_doc():
    return NetConfig.homogeneous(tinynet(), 4, 4).to_json()


def _table_doc():
    cfg = NetConfig.homogeneous(tinynet(), 4, 4)
    entries = {
        (k, a, w): 10 * a + (w or 0)
        for k, t in cfg.layer_types.items()
        for a in (2, 4, 8)
        for w in ((2, 4, 8) if t.configurable else (None,))
    }
    return LatencyTable(Target("demo", "xpulpv2"), cfg.layer_types, entries).to_json()


def _expect(load, path, field, *fragments):
    with pytest.raises(SchemaError) as ei:
        load(path)
    err = ei.value
    assert err.source == str(path)
    assert err.field == field
    assert str(err).startswith(f"{path}: {field}: ")
    assert "\n" not in str(err)
    for fragment in fragments:
        assert fragment in err.expected
    return err


def _write(tmp_path, doc, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


def _bad_config(tmp_path, mutate, field, *fragments):
    doc = _config_doc()
    mutate(doc)
    return _expect(NetConfig.load, _write(tmp_path, doc), field, *fragments)


def _bad_table(tmp_path, mutate, field, *fragments):
    doc = _table_doc()
    mutate(doc)
    return _expect(LatencyTable.load, _write(tmp_path, doc, "t.json"), field, *fragments)


def test_unchanged_documents_load(tmp_path):
    assert NetConfig.load(_write(tmp_path, _config_doc())) == NetConfig.homogeneous(tinynet(), 4, 4)
    assert len(LatencyTable.load(_write(tmp_path, _table_doc(), "t.json")).entries) == 33


# -- NetConfig ------------------------------------------------------------------------------------------------------
def test_config_wrong_tag(tmp_path):
    _bad_config(tmp_path, lambda d: d.update(schema="freebits/latency-table/v1"), "schema", "net-config/v1")


def test_config_wrong_version(tmp_path):
    _bad_config(tmp_path, lambda d: d.update(schema="freebits/net-config/v2"), "schema", "v2")


def test_config_missing_top_level_field(tmp_path):
    _bad_config(tmp_path, lambda d: d.pop("network"), "network", "missing")


def test_config_missing_layer_field(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][3].pop("b_in_fixed"), "layers[3].b_in_fixed", "missing")


def test_config_missing_layer_type_field(tmp_path):
    _bad_config(tmp_path, lambda d: d["layer_types"][DW].pop("groups"), f"layer_types.{DW}.groups", "missing")


def test_config_unknown_top_level_field(tmp_path):
    _bad_config(tmp_path, lambda d: d.update(comment="x"), "comment", "no such field")


def test_config_unknown_layer_field(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][1].update(b_out=8), "layers[1].b_out", "no such field")


def test_config_unknown_layer_type_field(tmp_path):
    _bad_config(tmp_path, lambda d: d["layer_types"][CONV].update(dilation=[1, 1]), f"layer_types.{CONV}.dilation")


def test_config_unknown_keys_inside_provenance_and_metrics_are_accepted(tmp_path):
    doc = _config_doc()
    doc["provenance"]["sweep"] = {"mu": [0.1, 0.2], "host": "x"}
    doc["metrics"] = {"val_accuracy": 0.5, "top5": 0.9, "notes": ["a"]}
    cfg = NetConfig.load(_write(tmp_path, doc))
    assert cfg.provenance["sweep"] == {"mu": [0.1, 0.2], "host": "x"}
    assert cfg.metrics["top5"] == 0.9
    cfg.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["metrics"]["notes"] == ["a"]


def test_config_known_provenance_and_metrics_fields_are_checked(tmp_path):
    _bad_config(tmp_path, lambda d: d["provenance"].update(method="magic"), "provenance.method", "fb")
    _bad_config(tmp_path, lambda d: d["provenance"].update(seed="1"), "provenance.seed", "integer")
    _bad_config(tmp_path, lambda d: d["metrics"].update(val_accuracy=71.5), "metrics.val_accuracy", "[0, 1]")
    _bad_config(tmp_path, lambda d: d["metrics"].update(latency={"t": -1}), "metrics.latency.t", "non-negative")


def test_config_b_in_outside_allowed_set(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][1].update(b_in=3), "layers[1].b_in", "[2, 4, 8]", "got 3")


def test_config_b_wt_outside_allowed_set(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][4].update(b_wt=16), "layers[4].b_wt", "[2, 4, 8]", "got 16")


def test_config_b_wt_must_be_null_for_add(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][2].update(b_wt=8), "layers[2].b_wt", "null")


def test_config_b_wt_must_be_set_for_conv(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][1].update(b_wt=None), "layers[1].b_wt", "integer")


def test_config_wrong_type(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][1].update(b_in="4"), "layers[1].b_in", "an integer")
    _bad_config(tmp_path, lambda d: d["layers"][1].update(b_in_fixed=1), "layers[1].b_in_fixed", "a boolean")


def test_config_key_not_matching_parameters(tmp_path):
    def mutate(d):
        d["layer_types"][CONV]["out_ch"] = 16

    err = _bad_config(tmp_path, mutate, f"layer_types.{CONV}", "conv2d_8x8x1_o16_k3x3_s1x1_p1.1.1.1_g1")
    assert "key derived from its parameters" in err.expected


def test_config_invalid_layer_type_parameters(tmp_path):
    _bad_config(tmp_path, lambda d: d["layer_types"][DW].update(groups=4), f"layer_types.{DW}.groups", "depthwise")


def test_config_unknown_layer_type_key(tmp_path):
    other = "conv2d_9x9x1_o8_k3x3_s1x1_p1.1.1.1_g1"
    _bad_config(tmp_path, lambda d: d["layers"][0].update(layer_type=other), "layers[0].layer_type", other)


def test_config_duplicate_layer(tmp_path):
    _bad_config(tmp_path, lambda d: d["layers"][4].update(name="dw1"), "layers[4].name", "'dw1' appears twice")


def test_config_no_layers(tmp_path):
    _bad_config(tmp_path, lambda d: d.update(layers=[]), "layers", "at least one")


def test_config_not_an_object(tmp_path):
    _expect(NetConfig.load, _write(tmp_path, [1, 2]), "<root>", "an object")


def test_config_malformed_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"schema": "freebits/net-config/v1",\n  "network": }\n')
    _expect(NetConfig.load, path, "<line 2>", "valid JSON")


def test_config_missing_file(tmp_path):
    _expect(NetConfig.load, tmp_path / "nope.json", "<file>", "a readable file")


# -- LatencyTable ---------------------------------------------------------------------------------------------------
def test_table_wrong_tag(tmp_path):
    _bad_table(tmp_path, lambda d: d.update(schema="freebits/latency-table/v0"), "schema", "latency-table/v1")


def test_table_missing_target_field(tmp_path):
    _bad_table(tmp_path, lambda d: d["target"].pop("isa"), "target.isa", "missing")


def test_table_missing_entry_field(tmp_path):
    _bad_table(tmp_path, lambda d: d["entries"][5].pop("latency"), "entries[5].latency", "missing")


def test_table_unknown_top_level_field(tmp_path):
    _bad_table(tmp_path, lambda d: d.update(metrics={}), "metrics", "no such field")


def test_table_unknown_target_field(tmp_path):
    _bad_table(tmp_path, lambda d: d["target"].update(freq_mhz=100), "target.freq_mhz", "no such field")


def test_table_unknown_entry_field(tmp_path):
    _bad_table(tmp_path, lambda d: d["entries"][0].update(energy=3), "entries[0].energy", "no such field")


def test_table_bits_outside_allowed_set(tmp_path):
    _bad_table(tmp_path, lambda d: d["entries"][2].update(b_wt=3), "entries[2].b_wt", "allowed_bits", "got 3")
    _bad_table(tmp_path, lambda d: d["entries"][2].update(b_in=1), "entries[2].b_in", "allowed_bits", "got 1")


def test_table_allowed_bits_is_data(tmp_path):
    def mutate(d):
        d["target"]["allowed_bits"] = [8, 4]
        d["entries"] = [e for e in d["entries"] if e["b_in"] != 2 and e["b_wt"] != 2]

    doc = _table_doc()
    mutate(doc)
    table = LatencyTable.load(_write(tmp_path, doc, "t.json"))
    assert table.target.allowed_bits == (4, 8)
    assert len(table.entries) == 3 * 4 + 2 * 2
    _bad_table(tmp_path, mutate_and(mutate, lambda d: d["entries"].append(_entry(CONV, 2, 4, 1))), "entries[16].b_in")


def _entry(key, a, w, lat):
    return {"layer_type": key, "b_in": a, "b_wt": w, "latency": lat}


def mutate_and(*fns):
    def run(d):
        for fn in fns:
            fn(d)

    return run


def test_table_duplicate_allowed_bits(tmp_path):
    _bad_table(tmp_path, lambda d: d["target"].update(allowed_bits=[2, 4, 4, 8]), "target.allowed_bits", "distinct")


def test_table_target_name_is_a_slug(tmp_path):
    _bad_table(tmp_path, lambda d: d["target"].update(name="gap8:xpulpv2"), "target.name", "slug")


def test_table_key_not_matching_parameters(tmp_path):
    _bad_table(tmp_path, lambda d: d["layer_types"][ADD].update(in_h=4), f"layer_types.{ADD}", "add_4x8x8_o8")


def test_table_unknown_layer_type_key(tmp_path):
    other = "linear_1x1x8_o12_k1x1_s1x1_p0.0.0.0_g1"
    _bad_table(tmp_path, lambda d: d["entries"][7].update(layer_type=other), "entries[7].layer_type", other)


def test_table_unknown_layer_type_key_in_failed(tmp_path):
    other = "linear_1x1x8_o12_k1x1_s1x1_p0.0.0.0_g1"
    failed = [{"layer_type": other, "b_in": 2, "b_wt": 2, "error": "oom"}]
    _bad_table(tmp_path, lambda d: d.update(failed=failed), "failed[0].layer_type", other)


def test_table_duplicate_entry(tmp_path):
    err = _bad_table(tmp_path, lambda d: d["entries"].append(dict(d["entries"][4])), "entries[33].layer_type")
    assert "appears twice" in err.expected


def test_table_negative_latency(tmp_path):
    _bad_table(tmp_path, lambda d: d["entries"][3].update(latency=-5), "entries[3].latency", "non-negative", "-5")


def test_table_latency_must_be_integer(tmp_path):
    _bad_table(tmp_path, lambda d: d["entries"][3].update(latency=12.5), "entries[3].latency", "an integer")


def test_table_b_wt_must_be_null_for_non_configurable(tmp_path):
    def mutate(d):
        i = next(i for i, e in enumerate(d["entries"]) if e["layer_type"] == ADD)
        d["entries"][i]["b_wt"] = 8
        d["where"] = i

    doc = _table_doc()
    mutate(doc)
    i = doc.pop("where")
    _expect(LatencyTable.load, _write(tmp_path, doc, "t.json"), f"entries[{i}].b_wt", "null")


def test_table_malformed_json(tmp_path):
    path = tmp_path / "t.json"
    path.write_text("{'schema': 1}")
    _expect(LatencyTable.load, path, "<line 1>", "valid JSON")


def test_table_missing_file(tmp_path):
    _expect(LatencyTable.load, tmp_path / "absent.json", "<file>", "readable")


# -- QuantizedNetwork -----------------------------------------------------------------------------------------------
@pytest.fixture
def golden(tmp_path):
    """A copy of the golden artifact: (json path, doc, npz arrays)."""
    np = pytest.importorskip("numpy")
    shutil.copy(FIXTURES / "golden_tinynet.json", tmp_path / "net.json")
    shutil.copy(FIXTURES / "golden_tinynet.npz", tmp_path / "net.npz")
    with np.load(tmp_path / "net.npz") as z:
        arrays = {k: z[k] for k in z.files}
    return tmp_path / "net.json", json.loads((tmp_path / "net.json").read_text()), arrays


def _bad_qn(golden, field, *fragments, doc_fn=None, npz_fn=None):
    import numpy as np

    path, doc, arrays = golden
    if doc_fn:
        doc_fn(doc)
        path.write_text(json.dumps(doc))
    if npz_fn:
        npz_fn(arrays)
        np.savez(path.with_suffix(".npz"), **arrays)
    return _expect(QuantizedNetwork.load, path, field, *fragments)


def test_qn_copy_loads(golden):
    path, doc, _ = golden
    assert QuantizedNetwork.load(path).doc == doc


def test_qn_wrong_tag(golden):
    _bad_qn(golden, "schema", "quantized-network/v1", doc_fn=lambda d: d.update(schema="freebits/qn/v1"))


def test_qn_missing_field(golden):
    _bad_qn(golden, "config_sha256", "missing", doc_fn=lambda d: d.pop("config_sha256"))


def test_qn_missing_node_field(golden):
    _bad_qn(golden, "nodes[4].w_quant", "missing", doc_fn=lambda d: d["nodes"][4].pop("w_quant"))


def test_qn_unknown_field(golden):
    _bad_qn(golden, "nodes[1].padding", "no such field", doc_fn=lambda d: d["nodes"][1].update(padding="same"))


def test_qn_unknown_tensor_field(golden):
    _bad_qn(golden, "tensors.dw1.zero_point", doc_fn=lambda d: d["tensors"]["dw1"].update(zero_point=0))


def test_qn_weight_bits_outside_range(golden):
    _bad_qn(golden, "nodes[1].w_quant.bits", "2..8", doc_fn=lambda d: d["nodes"][1]["w_quant"].update(bits=16))


def test_qn_invalid_layer_type_key(golden):
    _bad_qn(
        golden, "nodes[0].layer_type", "valid layer-type key", doc_fn=lambda d: d["nodes"][0].update(layer_type="c")
    )


def test_qn_layer_type_of_other_op(golden):
    _bad_qn(golden, "nodes[1].layer_type", "depthwise_conv2d", doc_fn=lambda d: d["nodes"][1].update(layer_type=CONV))


def test_qn_unknown_input_tensor(golden):
    _bad_qn(golden, "nodes[2].inputs[1]", "'dw9'", doc_fn=lambda d: d["nodes"][2].update(inputs=["conv0", "dw9"]))


def test_qn_bad_config_sha256(golden):
    _bad_qn(golden, "config_sha256", "64", doc_fn=lambda d: d.update(config_sha256="abc"))


def test_qn_npz_key_missing(golden):
    err = _bad_qn(golden, "nodes[1].weight", "'dw1.w' is missing", npz_fn=lambda a: a.pop("dw1.w"))
    assert "net.npz" in err.expected


def test_qn_npz_key_missing_in_bn(golden):
    _bad_qn(golden, "nodes[0].bn.var", "'conv0.bn.var'", npz_fn=lambda a: a.pop("conv0.bn.var"))


def test_qn_npz_key_named_in_json_not_present(golden):
    _bad_qn(golden, "nodes[4].bias", "'fc.bias' is missing", doc_fn=lambda d: d["nodes"][4].update(bias="fc.bias"))


def test_qn_npz_array_of_wrong_shape(golden):
    import numpy as np

    err = _bad_qn(golden, "nodes[4].weight", npz_fn=lambda a: a.update({"fc.w": np.zeros((10, 8), np.float32)}))
    assert "[8, 10]" in err.expected and "got [10, 8]" in err.expected


def test_qn_npz_depthwise_weight_must_be_kh_kw_1_c(golden):
    import numpy as np

    err = _bad_qn(golden, "nodes[1].weight", npz_fn=lambda a: a.update({"dw1.w": np.zeros((3, 3, 8, 8), np.float32)}))
    assert "[3, 3, 1, 8]" in err.expected


def test_qn_npz_scale_of_wrong_shape(golden):
    import numpy as np

    _bad_qn(golden, "nodes[0].w_quant.scale", "[8]", npz_fn=lambda a: a.update({"conv0.w_scale": np.ones(4)}))


def test_qn_reference_logits_of_wrong_shape(golden):
    import numpy as np

    _bad_qn(golden, "reference.logits", "[4, 10]", npz_fn=lambda a: a.update({"ref_logits": np.zeros((4, 9))}))


def test_qn_malformed_json(golden):
    path, _, _ = golden
    path.write_text(path.read_text()[:-20])
    with pytest.raises(SchemaError) as ei:
        QuantizedNetwork.load(path)
    assert ei.value.source == str(path)
    assert ei.value.field.startswith("<line ")
    assert "valid JSON" in str(ei.value)


def test_qn_missing_json_file(golden):
    path, _, _ = golden
    path.unlink()
    _expect(QuantizedNetwork.load, path, "<file>", "readable")


def test_qn_missing_npz_file(golden):
    path, _, _ = golden
    npz = path.with_suffix(".npz")
    npz.unlink()
    with pytest.raises(SchemaError) as ei:
        QuantizedNetwork.load(path)
    assert ei.value.source == str(npz)
    assert ei.value.field == "<file>"
    assert str(ei.value).startswith(f"{npz}: <file>: ")


def test_qn_npz_not_a_zip(golden):
    path, _, _ = golden
    path.with_suffix(".npz").write_bytes(b"not a zip")
    with pytest.raises(SchemaError, match=r"net\.npz: <file>: a readable \.npz"):
        QuantizedNetwork.load(path)


def test_qn_save_validates_before_writing(golden):
    path, doc, _ = golden
    before = path.read_text()
    qn = QuantizedNetwork.load(path)
    doc["nodes"][0]["weight"] = "nope"
    with pytest.raises(SchemaError) as ei:
        QuantizedNetwork(doc, qn.npz_path).save(path)
    assert ei.value.field == "nodes[0].weight"
    assert path.read_text() == before
    # a JSON written next to a missing npz is refused too
    with pytest.raises(SchemaError, match="other.npz: <file>"):
        qn.save(path.with_name("other.json"))
    assert not path.with_name("other.json").exists()
