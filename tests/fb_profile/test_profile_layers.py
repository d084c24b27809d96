"""Layer types from topologies, NetConfig files and ONNX models; ONNX errors."""

from __future__ import annotations

import onnx
import pytest
from onnx import TensorProto, helper

from fb_profile import layer_counts, layer_types_of
from fb_schema import NetConfig
from fb_schema.topologies import digitsnet, mobilenetv1, mobilenetv2


@pytest.mark.parametrize("make", [lambda: mobilenetv1(0.75, 224), lambda: mobilenetv2(1.0, 224), digitsnet])
def test_topology_and_onnx_give_identical_keys(make, tmp_path, onnx_of):
    net = make()
    path = tmp_path / "net.onnx"
    onnx.save(onnx_of(net), str(path))
    from_topology = list(layer_types_of(net))
    from_onnx = list(layer_types_of(path))
    assert from_onnx == from_topology
    assert layer_counts(path) == layer_counts(net)


def test_mobilenetv1_types_and_multiplicity():
    net = mobilenetv1(0.75, 224)
    types, counts = layer_types_of(net), layer_counts(net)
    assert len(types) == 21 and sum(counts.values()) == len(net.layers) == 29
    assert counts["conv2d_14x14x384_o384_k1x1_s1x1_p0.0.0.0_g1"] == 5  # blocks 7..11 share one type
    assert "depthwise_conv2d_112x112x24_o24_k3x3_s1x1_p1.1.1.1_g24" in types


def test_netconfig_file_gives_the_topology_keys(tmp_path):
    net = digitsnet()
    path = tmp_path / "cfg.json"
    NetConfig.homogeneous(net, 4, 4).save(path)
    assert layer_types_of(path) == layer_types_of(net)


def test_symbolic_batch_is_read_as_one(onnx_of):
    model = onnx_of(digitsnet(), batch="batch_size")
    assert list(layer_types_of(model)) == list(layer_types_of(digitsnet()))


def _single_conv(in_shape, op="Conv", **attrs):
    w = helper.make_tensor("w", TensorProto.FLOAT, (8, 4, 3, 3), [0.0] * 288)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    inputs = ["x", "w"] if op == "Conv" else ["x"]
    node = helper.make_node(op, inputs, ["y"], name="n0", **attrs)
    return helper.make_model(helper.make_graph([node], "g", [x], [y], [w]), opset_imports=[helper.make_opsetid("", 17)])


def test_onnx_dynamic_spatial_dimension_is_a_one_line_error():
    model = _single_conv([1, 4, "height", 16], kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"input 'x' has shape \[1, 4, 'height', 16\]; .*static") as e:
        layer_types_of(model)
    assert "\n" not in str(e.value)


def test_onnx_unsupported_op_is_named():
    model = _single_conv([1, 4, 16, 16], op="LeakyRelu")
    with pytest.raises(ValueError, match=r"node 'n0' \(LeakyRelu\): unsupported op; supported: Conv") as e:
        layer_types_of(model)
    assert "\n" not in str(e.value)


def test_onnx_grouped_conv_that_is_not_depthwise_is_rejected():
    w = helper.make_tensor("w", TensorProto.FLOAT, (8, 2, 3, 3), [0.0] * 144)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="g2", kernel_shape=[3, 3], pads=[1, 1, 1, 1], group=2)
    model = helper.make_model(helper.make_graph([node], "g", [x], [y], [w]))
    with pytest.raises(ValueError, match="group=2 is neither 1 nor depthwise"):
        layer_types_of(model)


def test_onnx_conv_padding_stride_and_auto_pad():
    model = _single_conv([1, 4, 16, 16], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER")
    (key,) = layer_types_of(model)
    assert key == "conv2d_16x16x4_o8_k3x3_s2x2_p0.0.1.1_g1"  # SAME_UPPER puts the odd pad at the end


def test_unreadable_sources_are_one_line_errors(tmp_path):
    bad = tmp_path / "x.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ValueError, match="not a readable ONNX model"):
        layer_types_of(bad)
    with pytest.raises(ValueError, match=r"expected a NetConfig or topology \(.json\) or an ONNX model"):
        layer_types_of(tmp_path / "net.txt")
