"""DORY export and ONNX Runtime verification: structure, goldens, and bit-exact twins."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx

from fb_deploy import IntegerNetwork, check_model, errors, l2_report, read_golden, run_layers, verify
from fb_deploy._dory_graph import parse
from fb_deploy._verify import run_twin, twin_session

ROOT = Path(__file__).resolve().parents[2]
T_RES = ROOT / "tests" / "fixtures" / "dory" / "accepted" / "t_res"


def test_golden_export_structure(golden_dir):
    model = onnx.load(golden_dir / "model.onnx")
    assert [o.version for o in model.opset_import] == [10]
    outputs = [int(n.output[0]) for n in model.graph.node]
    assert outputs == list(range(1, len(outputs) + 1))
    ops = [n.op_type for n in model.graph.node]
    assert ops[:6] == ["Conv", "Mul", "Add", "Div", "Floor", "Clip"]
    assert ops[-3:] == ["Clip", "Flatten", "Gemm"]
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in model.graph.initializer}
    assert inits["conv0.mul"].shape == (8, 1, 1) and inits["conv0.div"] == 2.0**24
    assert inits["dw1.weight"].shape == (8, 1, 3, 3)
    clip = next(n for n in model.graph.node if n.op_type == "Clip")
    assert {a.name: onnx.helper.get_attribute_value(a) for a in clip.attribute} == {
        "min": 0.0,
        "max": 15.0,
        "out_bits": 4,
    }
    config = json.loads((golden_dir / "config.json").read_text())
    assert config == {
        "BNRelu_bits": 32,
        "onnx_file": "model.onnx",
        "code reserved space": 160000,
        "n_inputs": 1,
        "input_bits": 8,
        "input_signed": False,
    }
    assert sorted(p.name for p in golden_dir.glob("out_layer*.txt")) == [f"out_layer{i}.txt" for i in range(5)]
    assert read_golden(golden_dir / "input.txt").size == 64
    assert read_golden(golden_dir / "out_layer0.txt").size == 8 * 8 * 8
    assert read_golden(golden_dir / "out_layer4.txt").size == 10


def test_goldens_are_hwc_reference_outputs(golden_dir):
    net = IntegerNetwork.load(golden_dir / "integer_network.json")
    x = read_golden(golden_dir / "input.txt").reshape(1, 8, 8, 1)
    values = run_layers(net, x)
    for i, layer in enumerate(net.layers):
        assert np.array_equal(read_golden(golden_dir / f"out_layer{i}.txt"), values[layer.output].reshape(-1))


def test_golden_verifies(golden_dir):
    assert errors(check_model(golden_dir)) == []
    report = verify(golden_dir, n_random=16)
    assert report.ok and report.golden_layers_equal == 5 and report.random_equal
    assert report.fakequant["argmax_agreement"] == 1.0
    assert report.fakequant["max_abs_error_rel"] < 0.01


def test_mixed_networks_check_and_verify(mixed_export):
    name, model_dir = mixed_export
    assert errors(check_model(model_dir)) == []
    report = verify(model_dir, n_random=4)
    assert report.golden_mismatches == [] and report.random_equal, report.to_json()
    net = IntegerNetwork.load(model_dir / "integer_network.json")
    bits = {b for layer in net.layers for b in (*layer.in_bits, layer.w_bits or 8)}
    assert bits == {2, 4, 8}
    if name != "mobilenetv1":
        assert any(layer.op == "add" for layer in net.layers)


def test_twin_splits_convolutions_exactly(golden_dir):
    """With a 2^10 exactness bound every conv and the classifier are split over input channels; still exact."""
    net = IntegerNetwork.load(golden_dir / "integer_network.json")
    graph = parse(onnx.load(golden_dir / "model.onnx"), json.loads((golden_dir / "config.json").read_text()))
    x = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 1))
    outs = run_twin(twin_session(graph, exact=2**10), x)
    ref = run_layers(net, x)
    assert all(np.array_equal(ref[layer.output], out) for layer, out in zip(net.layers, outs))


def test_twin_reproduces_dory_verified_goldens():
    """The t_res fixture's goldens were accepted by real DORY; the twin recomputes each of them."""
    report = verify(T_RES)
    assert report.golden_layers_equal == report.layers == 10 and report.random_equal is None


def test_memory_estimate(golden_dir):
    graph = parse(onnx.load(golden_dir / "model.onnx"), {"BNRelu_bits": 32})
    report = l2_report(graph, code_reserved=160000)
    conv0 = report[0]
    # input 8x8x1 u8 (64 B) + output 8x8x8 u4 (256 B); weights 72 B + requant 2 x 8 x 4 B
    assert (conv0.activations, conv0.weights, conv0.placement) == (320, 136, "L2")
    add = report[2]
    assert add.activations == 256 + 512 + 512  # u4 and u8 inputs, u8 output
    tight = l2_report(graph, l2_bytes=1000, code_reserved=0)
    assert [m.placement for m in tight] == ["L2", "L2", "L3 activations", "L2", "L2"]
