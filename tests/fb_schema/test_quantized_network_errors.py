"""One test per QuantizedNetwork SchemaError case, on broken copies of the golden artifact."""

import json
import shutil

import pytest
from conftest import FIXTURES

from fb_schema import QuantizedNetwork, SchemaError

CONV = "conv2d_8x8x1_o8_k3x3_s1x1_p1.1.1.1_g1"


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


@pytest.fixture
def bad_qn(golden, expect_schema_error):
    return lambda field, *fragments, doc_fn=None, npz_fn=None: _bad_qn(
        golden, expect_schema_error, field, *fragments, doc_fn=doc_fn, npz_fn=npz_fn
    )


def _bad_qn(golden, expect, field, *fragments, doc_fn=None, npz_fn=None):
    import numpy as np

    path, doc, arrays = golden
    if doc_fn:
        doc_fn(doc)
        path.write_text(json.dumps(doc))
    if npz_fn:
        npz_fn(arrays)
        np.savez(path.with_suffix(".npz"), **arrays)
    return expect(QuantizedNetwork.load, path, field, *fragments)


def test_qn_copy_loads(golden):
    path, doc, _ = golden
    assert QuantizedNetwork.load(path).doc == doc


def test_qn_wrong_tag(bad_qn):
    bad_qn("schema", "quantized-network/v1", doc_fn=lambda d: d.update(schema="freebits/qn/v1"))


def test_qn_missing_field(bad_qn):
    bad_qn("config_sha256", "missing", doc_fn=lambda d: d.pop("config_sha256"))


def test_qn_missing_node_field(bad_qn):
    bad_qn("nodes[4].w_quant", "missing", doc_fn=lambda d: d["nodes"][4].pop("w_quant"))


def test_qn_unknown_field(bad_qn):
    bad_qn("nodes[1].padding", "no such field", doc_fn=lambda d: d["nodes"][1].update(padding="same"))


def test_qn_unknown_tensor_field(bad_qn):
    bad_qn("tensors.dw1.zero_point", doc_fn=lambda d: d["tensors"]["dw1"].update(zero_point=0))


def test_qn_weight_bits_outside_range(bad_qn):
    bad_qn("nodes[1].w_quant.bits", "2..8", doc_fn=lambda d: d["nodes"][1]["w_quant"].update(bits=16))


def test_qn_invalid_layer_type_key(bad_qn):
    bad_qn("nodes[0].layer_type", "valid layer-type key", doc_fn=lambda d: d["nodes"][0].update(layer_type="c"))


def test_qn_layer_type_of_other_op(bad_qn):
    bad_qn("nodes[1].layer_type", "depthwise_conv2d", doc_fn=lambda d: d["nodes"][1].update(layer_type=CONV))


def test_qn_unknown_input_tensor(bad_qn):
    bad_qn("nodes[2].inputs[1]", "'dw9'", doc_fn=lambda d: d["nodes"][2].update(inputs=["conv0", "dw9"]))


def test_qn_bad_config_sha256(bad_qn):
    bad_qn("config_sha256", "64", doc_fn=lambda d: d.update(config_sha256="abc"))


def test_qn_npz_key_missing(bad_qn):
    err = bad_qn("nodes[1].weight", "'dw1.w' is missing", npz_fn=lambda a: a.pop("dw1.w"))
    assert "net.npz" in err.expected


def test_qn_npz_key_missing_in_bn(bad_qn):
    bad_qn("nodes[0].bn.var", "'conv0.bn.var'", npz_fn=lambda a: a.pop("conv0.bn.var"))


def test_qn_npz_key_named_in_json_not_present(bad_qn):
    bad_qn("nodes[4].bias", "'fc.bias' is missing", doc_fn=lambda d: d["nodes"][4].update(bias="fc.bias"))


def test_qn_npz_array_of_wrong_shape(bad_qn):
    import numpy as np

    err = bad_qn("nodes[4].weight", npz_fn=lambda a: a.update({"fc.w": np.zeros((10, 8), np.float32)}))
    assert "[8, 10]" in err.expected and "got [10, 8]" in err.expected


def test_qn_npz_depthwise_weight_must_be_kh_kw_1_c(bad_qn):
    import numpy as np

    err = bad_qn("nodes[1].weight", npz_fn=lambda a: a.update({"dw1.w": np.zeros((3, 3, 8, 8), np.float32)}))
    assert "[3, 3, 1, 8]" in err.expected


def test_qn_npz_scale_of_wrong_shape(bad_qn):
    import numpy as np

    bad_qn("nodes[0].w_quant.scale", "[8]", npz_fn=lambda a: a.update({"conv0.w_scale": np.ones(4)}))


def test_qn_reference_logits_of_wrong_shape(bad_qn):
    import numpy as np

    bad_qn("reference.logits", "[4, 10]", npz_fn=lambda a: a.update({"ref_logits": np.zeros((4, 9))}))


def test_qn_malformed_json(golden):
    path, _, _ = golden
    path.write_text(path.read_text()[:-20])
    with pytest.raises(SchemaError) as ei:
        QuantizedNetwork.load(path)
    assert ei.value.source == str(path)
    assert ei.value.field.startswith("<line ")
    assert "valid JSON" in str(ei.value)


def test_qn_missing_json_file(golden, expect_schema_error):
    path, _, _ = golden
    path.unlink()
    expect_schema_error(QuantizedNetwork.load, path, "<file>", "readable")


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
