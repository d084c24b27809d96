"""One test per SchemaError case: each message reads "<file>: <field.path>: <expected>"."""

import json

import pytest

from fb_schema import LatencyTable, NetConfig, Target
from fb_schema.topologies import tinynet

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


def _write(tmp_path, doc, name="c.json"):
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.fixture
def bad_config(tmp_path, expect_schema_error):
    """Mutate a valid config document, write it, and expect the SchemaError for ``field``."""

    def check(mutate, field, *fragments):
        doc = _config_doc()
        mutate(doc)
        return expect_schema_error(NetConfig.load, _write(tmp_path, doc), field, *fragments)

    return check


@pytest.fixture
def bad_table(tmp_path, expect_schema_error):
    """Mutate a valid latency-table document, write it, and expect the SchemaError for ``field``."""

    def check(mutate, field, *fragments):
        doc = _table_doc()
        mutate(doc)
        return expect_schema_error(LatencyTable.load, _write(tmp_path, doc, "t.json"), field, *fragments)

    return check


def test_unchanged_documents_load(tmp_path):
    assert NetConfig.load(_write(tmp_path, _config_doc())) == NetConfig.homogeneous(tinynet(), 4, 4)
    assert len(LatencyTable.load(_write(tmp_path, _table_doc(), "t.json")).entries) == 33


# -- NetConfig ------------------------------------------------------------------------------------------------------
def test_config_wrong_tag(bad_config):
    bad_config(lambda d: d.update(schema="freebits/latency-table/v1"), "schema", "net-config/v1")


def test_config_wrong_version(bad_config):
    bad_config(lambda d: d.update(schema="freebits/net-config/v2"), "schema", "v2")


def test_config_missing_top_level_field(bad_config):
    bad_config(lambda d: d.pop("network"), "network", "missing")


def test_config_missing_layer_field(bad_config):
    bad_config(lambda d: d["layers"][3].pop("b_in_fixed"), "layers[3].b_in_fixed", "missing")


def test_config_missing_layer_type_field(bad_config):
    bad_config(lambda d: d["layer_types"][DW].pop("groups"), f"layer_types.{DW}.groups", "missing")


def test_config_unknown_top_level_field(bad_config):
    bad_config(lambda d: d.update(comment="x"), "comment", "no such field")


def test_config_unknown_layer_field(bad_config):
    bad_config(lambda d: d["layers"][1].update(b_out=8), "layers[1].b_out", "no such field")


def test_config_unknown_layer_type_field(bad_config):
    bad_config(lambda d: d["layer_types"][CONV].update(dilation=[1, 1]), f"layer_types.{CONV}.dilation")


def test_config_unknown_keys_inside_provenance_and_metrics_are_accepted(tmp_path):
    doc = _config_doc()
    doc["provenance"]["sweep"] = {"mu": [0.1, 0.2], "host": "x"}
    doc["metrics"] = {"val_accuracy": 0.5, "top5": 0.9, "notes": ["a"]}
    cfg = NetConfig.load(_write(tmp_path, doc))
    assert cfg.provenance["sweep"] == {"mu": [0.1, 0.2], "host": "x"}
    assert cfg.metrics["top5"] == 0.9
    cfg.save(tmp_path / "again.json")
    assert json.loads((tmp_path / "again.json").read_text())["metrics"]["notes"] == ["a"]


def test_config_known_provenance_and_metrics_fields_are_checked(bad_config):
    bad_config(lambda d: d["provenance"].update(method="magic"), "provenance.method", "fb")
    bad_config(lambda d: d["provenance"].update(seed="1"), "provenance.seed", "integer")
    bad_config(lambda d: d["metrics"].update(val_accuracy=71.5), "metrics.val_accuracy", "[0, 1]")
    bad_config(lambda d: d["metrics"].update(latency={"t": -1}), "metrics.latency.t", "non-negative")


def test_config_b_in_outside_allowed_set(bad_config):
    bad_config(lambda d: d["layers"][1].update(b_in=3), "layers[1].b_in", "[2, 4, 8]", "got 3")


def test_config_b_wt_outside_allowed_set(bad_config):
    bad_config(lambda d: d["layers"][4].update(b_wt=16), "layers[4].b_wt", "[2, 4, 8]", "got 16")


def test_config_b_wt_must_be_null_for_add(bad_config):
    bad_config(lambda d: d["layers"][2].update(b_wt=8), "layers[2].b_wt", "null")


def test_config_b_wt_must_be_set_for_conv(bad_config):
    bad_config(lambda d: d["layers"][1].update(b_wt=None), "layers[1].b_wt", "integer")


def test_config_wrong_type(bad_config):
    bad_config(lambda d: d["layers"][1].update(b_in="4"), "layers[1].b_in", "an integer")
    bad_config(lambda d: d["layers"][1].update(b_in_fixed=1), "layers[1].b_in_fixed", "a boolean")


def test_config_key_not_matching_parameters(bad_config):
    def mutate(d):
        d["layer_types"][CONV]["out_ch"] = 16

    err = bad_config(mutate, f"layer_types.{CONV}", "conv2d_8x8x1_o16_k3x3_s1x1_p1.1.1.1_g1")
    assert "key derived from its parameters" in err.expected


def test_config_invalid_layer_type_parameters(bad_config):
    bad_config(lambda d: d["layer_types"][DW].update(groups=4), f"layer_types.{DW}.groups", "depthwise")


def test_config_unknown_layer_type_key(bad_config):
    other = "conv2d_9x9x1_o8_k3x3_s1x1_p1.1.1.1_g1"
    bad_config(lambda d: d["layers"][0].update(layer_type=other), "layers[0].layer_type", other)


def test_config_duplicate_layer(bad_config):
    bad_config(lambda d: d["layers"][4].update(name="dw1"), "layers[4].name", "'dw1' appears twice")


def test_config_no_layers(bad_config):
    bad_config(lambda d: d.update(layers=[]), "layers", "at least one")


def test_config_not_an_object(tmp_path, expect_schema_error):
    expect_schema_error(NetConfig.load, _write(tmp_path, [1, 2]), "<root>", "an object")


def test_config_malformed_json(tmp_path, expect_schema_error):
    path = tmp_path / "c.json"
    path.write_text('{"schema": "freebits/net-config/v1",\n  "network": }\n')
    expect_schema_error(NetConfig.load, path, "<line 2>", "valid JSON")


def test_config_missing_file(tmp_path, expect_schema_error):
    expect_schema_error(NetConfig.load, tmp_path / "nope.json", "<file>", "a readable file")


# -- LatencyTable ---------------------------------------------------------------------------------------------------
def test_table_wrong_tag(bad_table):
    bad_table(lambda d: d.update(schema="freebits/latency-table/v0"), "schema", "latency-table/v1")


def test_table_missing_target_field(bad_table):
    bad_table(lambda d: d["target"].pop("isa"), "target.isa", "missing")


def test_table_missing_entry_field(bad_table):
    bad_table(lambda d: d["entries"][5].pop("latency"), "entries[5].latency", "missing")


def test_table_unknown_top_level_field(bad_table):
    bad_table(lambda d: d.update(metrics={}), "metrics", "no such field")


def test_table_unknown_target_field(bad_table):
    bad_table(lambda d: d["target"].update(freq_mhz=100), "target.freq_mhz", "no such field")


def test_table_unknown_entry_field(bad_table):
    bad_table(lambda d: d["entries"][0].update(energy=3), "entries[0].energy", "no such field")


def test_table_bits_outside_allowed_set(bad_table):
    bad_table(lambda d: d["entries"][2].update(b_wt=3), "entries[2].b_wt", "allowed_bits", "got 3")
    bad_table(lambda d: d["entries"][2].update(b_in=1), "entries[2].b_in", "allowed_bits", "got 1")


def test_table_allowed_bits_is_data(tmp_path, bad_table):
    def mutate(d):
        d["target"]["allowed_bits"] = [8, 4]
        d["entries"] = [e for e in d["entries"] if e["b_in"] != 2 and e["b_wt"] != 2]

    doc = _table_doc()
    mutate(doc)
    table = LatencyTable.load(_write(tmp_path, doc, "t.json"))
    assert table.target.allowed_bits == (4, 8)
    assert len(table.entries) == 3 * 4 + 2 * 2
    bad_table(mutate_and(mutate, lambda d: d["entries"].append(_entry(CONV, 2, 4, 1))), "entries[16].b_in")


def _entry(key, a, w, lat):
    return {"layer_type": key, "b_in": a, "b_wt": w, "latency": lat}


def mutate_and(*fns):
    def run(d):
        for fn in fns:
            fn(d)

    return run


def test_table_duplicate_allowed_bits(bad_table):
    bad_table(lambda d: d["target"].update(allowed_bits=[2, 4, 4, 8]), "target.allowed_bits", "distinct")


def test_table_target_name_is_a_slug(bad_table):
    bad_table(lambda d: d["target"].update(name="gap8:xpulpv2"), "target.name", "slug")


def test_table_key_not_matching_parameters(bad_table):
    bad_table(lambda d: d["layer_types"][ADD].update(in_h=4), f"layer_types.{ADD}", "add_4x8x8_o8")


def test_table_unknown_layer_type_key(bad_table):
    other = "linear_1x1x8_o12_k1x1_s1x1_p0.0.0.0_g1"
    bad_table(lambda d: d["entries"][7].update(layer_type=other), "entries[7].layer_type", other)


def test_table_unknown_layer_type_key_in_failed(bad_table):
    other = "linear_1x1x8_o12_k1x1_s1x1_p0.0.0.0_g1"
    failed = [{"layer_type": other, "b_in": 2, "b_wt": 2, "error": "oom"}]
    bad_table(lambda d: d.update(failed=failed), "failed[0].layer_type", other)


def test_table_duplicate_entry(bad_table):
    err = bad_table(lambda d: d["entries"].append(dict(d["entries"][4])), "entries[33].layer_type")
    assert "appears twice" in err.expected


def test_table_negative_latency(bad_table):
    bad_table(lambda d: d["entries"][3].update(latency=-5), "entries[3].latency", "non-negative", "-5")


def test_table_latency_must_be_integer(bad_table):
    bad_table(lambda d: d["entries"][3].update(latency=12.5), "entries[3].latency", "an integer")


def test_table_b_wt_must_be_null_for_non_configurable(tmp_path, expect_schema_error):
    def mutate(d):
        i = next(i for i, e in enumerate(d["entries"]) if e["layer_type"] == ADD)
        d["entries"][i]["b_wt"] = 8
        d["where"] = i

    doc = _table_doc()
    mutate(doc)
    i = doc.pop("where")
    expect_schema_error(LatencyTable.load, _write(tmp_path, doc, "t.json"), f"entries[{i}].b_wt", "null")


def test_table_malformed_json(tmp_path, expect_schema_error):
    path = tmp_path / "t.json"
    path.write_text("{'schema': 1}")
    expect_schema_error(LatencyTable.load, path, "<line 1>", "valid JSON")


def test_table_missing_file(tmp_path, expect_schema_error):
    expect_schema_error(LatencyTable.load, tmp_path / "absent.json", "<file>", "readable")
