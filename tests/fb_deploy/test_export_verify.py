"""DORY export and ONNX Runtime verification: structure, goldens, and bit-exact twins."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import GOLDEN, ROOT

from fb_deploy import (
    IntegerNetwork,
    build_dory_model,
    check_model,
    errors,
    export_dory,
    integerize,
    l2_report,
    random_quantized_network,
    read_golden,
    run_layers,
    verify,
)
from fb_deploy._dory_graph import parse
from fb_deploy._verify import run_twin, twin_session
from fb_schema import NetConfig, Precision
from fb_schema.topologies import mobilenetv1

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
    else:  # no residual adder: the integer logits follow the fake-quant ones closely through 29 layers
        assert report.fakequant["max_abs_error_rel"] < 0.01 and report.fakequant["argmax_agreement"] == 1.0


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
    assert report[2].activations == 256 + 512  # DORY's tiler counts the adder's first input and its output
    tight = l2_report(graph, l2_bytes=400, code_reserved=0)
    # conv0 needs 456 B: streaming its weights (2 x 17 B per output channel) fits 400 B; the Add (768 B) cannot
    assert [m.placement for m in tight] == ["L3 weights", "impossible", "impossible", "L3 input", "L2"]
    tighter = l2_report(graph, l2_bytes=300, code_reserved=0)
    # at 300 B conv0 tiles its output by rows into L3 (64 B in + 2 x 32 B + 136 B); conv1 then reads from L3
    assert [(m.placement, m.input_l3, m.output_l3) for m in tighter[:2]] == [
        ("L3 output", False, True),
        ("impossible", True, True),
    ]


# L3 decisions of real DORY (be3d6dd, PULP_gvsoc, code reserved 135000) for random-weight MobileNetV1-0.75 at
# 224x224, read from the generated inc/network.h: layers reading their input from L3, writing their output to L3,
# and streaming their weights from L3 (allocate_layer == 0, weighted layers only).
DORY_MNV1_224 = {
    "8b": ({1, 3, 5, 7}, {0, 2, 4, 6}, {26, 28}),
    "mixed": ({3, 7}, {2, 6}, {5, 28}),
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", sorted(DORY_MNV1_224))
def test_memory_estimate_matches_dory(tmp_path, variant, mixed_config_of):

    topo = mobilenetv1(0.75, 224)
    if variant == "8b":
        config = NetConfig.homogeneous(topo, 8, 8)
    else:
        config = mixed_config_of(topo).with_precisions({"fc": Precision(8, 8)})
    qn = random_quantized_network(topo, config, 3, tmp_path / "net.json", n_ref=1, n_calib=2)
    net = integerize(qn)
    graph = parse(build_dory_model(net), {"BNRelu_bits": net.requant_bits, "code reserved space": 135000})
    report = l2_report(graph)
    inputs = {i for i, m in enumerate(report) if m.input_l3}
    outputs = {i for i, m in enumerate(report) if m.output_l3}
    weights = {i for i, m in enumerate(report) if m.placement == "L3 weights"}
    assert (inputs, outputs, weights) == DORY_MNV1_224[variant]


@pytest.mark.parametrize("reverse", [False, True])
def test_adder_runs_the_previous_layer_as_input_0(golden_qn, tmp_path, reverse):
    """Whatever the add's input order, the export puts the output of the layer just before it (dw1) first, with
    its own requantization in in1_*: DORY's kernel reads it at input 0's type and, since int(input 0) >
    int(input 1), applies in1_* to it (fb_deploy._dory_add). f1924e9 put the skip tensor first: wrong on GVSOC."""
    net = integerize(golden_qn)
    add = net.layers[2]
    dw1_rq = add.add_rq[add.inputs.index("dw1")]
    if reverse:
        add.inputs = add.inputs[::-1]
        add.in_bits, add.in_signed = add.in_bits[::-1], add.in_signed[::-1]
        add.add_rq = (add.add_rq[1], add.add_rq[0], add.add_rq[2])
    model_dir = export_dory(net, tmp_path / "m")
    nodes = onnx.load(model_dir / "model.onnx").graph.node
    i = next(k for k, n in enumerate(nodes) if n.op_type == "Add" and len(n.attribute) > 3)
    node = nodes[i]
    assert node.input[0] == nodes[i - 1].output[0]  # the Clip closing dw1's requant chain
    assert int(node.input[0]) > int(node.input[1])
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    assert (attrs["in1_mul"], attrs["in1_add"], attrs["in1_shift"]) == tuple(dw1_rq)
    assert attrs["in1_n_levels"] == attrs["in2_n_levels"] == 16  # both inputs at 4 bits
    assert errors(check_model(model_dir)) == []
    report = verify(model_dir)
    assert report.ok and report.random_equal


def test_layer_local_agreement_with_fake_quant(golden_dir, golden_qn):
    """Every layer on the fake-quant model's own inputs: convs, pool and classifier agree exactly; DORY's adder
    (8-bit intermediate per input) is within one step."""
    report = verify(golden_dir, n_random=0, artifact=GOLDEN)
    rows = {row["layer"]: row for row in report.layer_agreement}
    assert [r["mismatches"] for name, r in rows.items() if name != "add1"] == [0, 0, 0, 0]
    assert rows["add1"]["max_steps"] == 1 and rows["add1"]["mismatches"] < 0.2 * rows["add1"]["values"]
    assert rows["conv0"]["values"] == 4 * 8 * 8 * 8  # 4 reference images
