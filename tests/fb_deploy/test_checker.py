"""The checker: every accepted DORY fixture passes, every rejected one is flagged with its broken rule."""

from __future__ import annotations

import json
import shutil

import numpy as np
import onnx
import pytest
from conftest import DORY_FIXTURES, SHARED_DORY
from onnx import helper, numpy_helper

from fb_deploy import check_model, errors

REJECTED = {
    "t_opset11": "clip-attributes",
    "t_scalarmul": "requant-per-channel",
    "t_noadd": "requant-add",
    "t_strnames": "numeric-names",
    "t_res_noaddbits": "residual-add-attributes",
}


@pytest.mark.parametrize("name", ["t_res", "t_2bit", "t_signed", "t_bn64"])
def test_accepted_fixtures_pass(name):
    assert errors(check_model(DORY_FIXTURES / "accepted" / name)) == []


@pytest.mark.parametrize("name", ["net_v1", "dronet_dory_example"])
def test_shared_accepted_models_pass(name):
    path = SHARED_DORY / "accepted" / name
    if not path.exists():
        pytest.skip(f"{path} is not available (DORY's own example is referenced in place, never copied)")
    findings = check_model(path)
    assert errors(findings) == []
    if name == "dronet_dory_example":  # QuantLab's adds reach 2^24 in float32: a recommendation, not an error
        assert {f.rule for f in findings} == {"float32-exactness"}


@pytest.mark.parametrize("name,rule", sorted(REJECTED.items()))
def test_rejected_fixtures_name_their_rule(name, rule):
    found = errors(check_model(DORY_FIXTURES / "rejected" / name))
    assert rule in {f.rule for f in found}
    first = next(f for f in found if f.rule == rule)
    assert "->" in first.node  # names the node (op -> output tensor)


def _mutate(golden_dir, tmp_path, edit):
    """Copy the exported golden model dir and apply ``edit(model)`` to its ONNX."""
    out = tmp_path / "m"
    shutil.copytree(golden_dir, out)
    model = onnx.load(out / "model.onnx")
    edit(model)
    onnx.save(model, out / "model.onnx")
    return out


def _node(model, op, index=0):
    return [n for n in model.graph.node if n.op_type == op][index]


def _residual_add(model):
    return next(n for n in model.graph.node if any(a.name == "out_shift" for a in n.attribute))


def _set_attr(node, name, value):
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    if value is not None:
        node.attribute.append(helper.make_attribute(name, value))


def test_unsupported_op_is_named(golden_dir, tmp_path):
    def edit(model):
        _node(model, "Floor").op_type = "Relu"

    found = errors(check_model(_mutate(golden_dir, tmp_path, edit)))
    assert ("op-whitelist", "Relu -> 5") in [(f.rule, f.node) for f in found]


@pytest.mark.parametrize(
    "edit,rule",
    [
        (lambda m: _set_attr(_node(m, "Conv"), "dilations", None), "conv-attributes"),
        (lambda m: _set_attr(_node(m, "Conv"), "weight_bits", 3), "weight-bits"),
        (lambda m: _set_attr(_node(m, "Clip"), "max", 127.0), "clip-range"),
        (lambda m: _set_attr(_residual_add(m), "out_shift", None), "residual-add-attributes"),
        (lambda m: _set_attr(_node(m, "Conv", 1), "group", 2), "conv-groups"),
    ],
)
def test_mutations_break_one_rule(golden_dir, tmp_path, edit, rule):
    assert rule in {f.rule for f in errors(check_model(_mutate(golden_dir, tmp_path, edit)))}


def test_weights_out_of_range_and_bias_name(golden_dir, tmp_path):
    def edit(model):
        for init in model.graph.initializer:
            if init.name == "conv0.weight":
                w = numpy_helper.to_array(init).copy()
                w.flat[0] = 200.0  # beyond int8
                init.CopyFrom(numpy_helper.from_array(w, init.name))
            if init.name == "fc.bias":
                init.name = "fc.b"
        gemm = _node(model, "Gemm")
        gemm.input[2] = "fc.b"

    rules = {f.rule for f in errors(check_model(_mutate(golden_dir, tmp_path, edit)))}
    assert {"weight-values", "bias-name"} <= rules


def test_missing_golden_file_and_memory(golden_dir, tmp_path):
    out = _mutate(golden_dir, tmp_path, lambda m: None)
    (out / "out_layer3.txt").unlink()
    assert "golden-files" in {f.rule for f in errors(check_model(out))}
    (out / "out_layer3.txt").write_text("0,\n")
    config = json.loads((out / "config.json").read_text())
    config["code reserved space"] = 512000 - 300  # leaves 300 bytes of L2
    (out / "config.json").write_text(json.dumps(config))
    memory = {f.node: f for f in check_model(out) if f.rule == "l2-memory"}
    assert memory["BNReluConvolution0"].severity == "warning" and "(L3 output)" in memory["BNReluConvolution0"].message
    assert (
        memory["BNReluConvolution1"].severity == "error"
        and "exits 0 without output" in memory["BNReluConvolution1"].message
    )


def test_requant_chain_on_input_is_rejected(golden_dir, tmp_path):
    def edit(model):
        conv = _node(model, "Conv")
        model.graph.node.remove(conv)
        mul = _node(model, "Mul")
        mul.input[0] = "input.1"

    found = {f.rule for f in errors(check_model(_mutate(golden_dir, tmp_path, edit)))}
    assert "first-node" in found


def test_float32_exactness_is_only_a_warning(golden_dir, tmp_path):
    def edit(model):
        for init in model.graph.initializer:
            if init.name == "conv0.add":
                a = numpy_helper.to_array(init).astype(np.float32) + 2**25
                init.CopyFrom(numpy_helper.from_array(a, init.name))

    findings = check_model(_mutate(golden_dir, tmp_path, edit))
    assert errors(findings) == []
    assert "float32-exactness" in {f.rule for f in findings}


def test_neglected_op_out_of_order(golden_dir, tmp_path):
    def edit(model):
        nodes = list(model.graph.node)
        flatten = next(i for i, n in enumerate(nodes) if n.op_type == "Flatten")
        nodes.insert(flatten - 2, nodes.pop(flatten))  # Flatten now sits before the pool's Floor and Clip
        del model.graph.node[:]
        model.graph.node.extend(nodes)

    rules = {f.rule for f in errors(check_model(_mutate(golden_dir, tmp_path, edit)))}
    assert "neglected-order" in rules


@pytest.mark.parametrize(
    "const,value,rule", [("pool.mul", 4168257.0, "avgpool-mul"), ("conv0.div", 3.0, "requant-div")]
)
def test_requant_constants(golden_dir, tmp_path, const, value, rule):
    def edit(model):
        for init in model.graph.initializer:
            if init.name == const:
                init.CopyFrom(numpy_helper.from_array(np.array(value, np.float32), const))

    assert rule in {f.rule for f in errors(check_model(_mutate(golden_dir, tmp_path, edit)))}
