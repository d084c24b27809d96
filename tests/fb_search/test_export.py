"""The QuantizedNetwork artifact: read the golden fixture, write the same shape, match the numpy reference."""

import json

import numpy as np

from fb_schema import QuantizedNetwork
from fb_search import export_quantized_network, load_quantized_network, predict


def test_reference_forward_reproduces_golden(golden, ref_forward):
    ours, stored = ref_forward(golden)
    np.testing.assert_allclose(ours, stored, rtol=1e-4, atol=1e-4)


def test_read_golden_into_model(golden):
    model, topo, config = load_quantized_network(golden)
    qn = QuantizedNetwork.load(golden)
    with np.load(qn.npz_path) as npz:
        logits = predict(model, npz["ref_inputs"])
        np.testing.assert_allclose(logits, npz["ref_logits"], rtol=1e-3, atol=1e-3)
    assert {n: (p.b_in, p.b_wt) for n, p in config.precisions().items()} == {
        "conv0": (8, 8),
        "dw1": (4, 4),
        "add1": (8, None),
        "pool": (8, None),
        "fc": (4, 4),
    }
    golden_cfg = json.loads(golden.with_name("golden_tinynet.config.json").read_text())
    assert [(c["b_in"], c["b_wt"]) for c in golden_cfg["layers"]] == [(c.b_in, c.b_wt) for c in config.layers]


def test_write_golden_shape(tmp_path, golden, ref_forward):
    model, topo, config = load_quantized_network(golden)
    golden = QuantizedNetwork.load(golden)
    with np.load(golden.npz_path) as npz:
        ref_inputs, golden_arrays = npz["ref_inputs"], {k: npz[k] for k in npz.files}
    path = export_quantized_network(model, topo, config, ref_inputs, tmp_path / "tiny.json")
    ours = QuantizedNetwork.load(path)  # validated against fb_schema
    assert ours.doc["config_sha256"] == config.sha256()
    assert {k: v for k, v in ours.input.items() if k != "range"} == golden.input
    assert ours.input["range"] == [0.0, 1.0]
    for a, b in zip(ours.nodes, golden.nodes):
        assert {k: v for k, v in a.items() if k != "w_quant"} == {k: v for k, v in b.items() if k != "w_quant"}
        assert (a["w_quant"] or {}).get("bits") == (b["w_quant"] or {}).get("bits")
    for name, spec in golden.tensors.items():
        assert ours.tensors[name]["bits"] == spec["bits"] and ours.tensors[name]["signed"] == spec["signed"]
        np.testing.assert_allclose(ours.tensors[name]["scale"], spec["scale"], rtol=1e-6)
    with np.load(ours.npz_path) as npz:
        for key, value in golden_arrays.items():
            np.testing.assert_allclose(npz[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    logits, stored = ref_forward(path)
    np.testing.assert_allclose(logits, stored, rtol=1e-3, atol=1e-3)
