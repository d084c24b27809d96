"""A ReLU after a residual add is applied in float mode too: the float logits equal an ONNX reference with that
ReLU, built with onnx.helper from the checkpoint's weights (not through fb-search's exporter)."""

import numpy as np
import pytest
from flax import nnx

from fb_schema import LayerType, NetConfig
from fb_schema.topologies import INPUT, Topology, TopologyLayer
from fb_search import QNet, load_checkpoint, load_into, predict, save_checkpoint

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
helper, numpy_helper = onnx.helper, onnx.numpy_helper


def _topology() -> Topology:
    conv0 = LayerType.conv2d(8, 8, 3, 8, 3)
    conv1 = LayerType.conv2d(8, 8, 8, 8, 3)
    layers = (
        TopologyLayer("conv0", conv0, (INPUT,), "relu"),
        TopologyLayer("conv1", conv1, ("conv0",), "none"),
        TopologyLayer("add", LayerType.add(8, 8, 8), ("conv0", "conv1"), "relu"),
        TopologyLayer("pool", LayerType.global_avgpool(8, 8, 8), ("add",), "none"),
        TopologyLayer("fc", LayerType.linear(8, 4), ("pool",), "none"),
    )
    return Topology("postadd", (8, 8, 3), 4, layers, input_range=(-1.0, 1.0))


def _reference(state: dict, post_add_relu: bool):
    """NCHW ONNX of the topology from raw checkpoint arrays: Conv, BatchNormalization, Relu, Add, pooling, Gemm."""
    layers = state["layers"]
    nodes, inits = [], []

    def const(name, value):
        inits.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def conv_bn(name, x, act):
        p = layers[name]
        w = const(f"{name}.w", np.transpose(p["kernel"], (3, 2, 0, 1)))
        bn = [const(f"{name}.{k}", p["bn"][k]) for k in ("scale", "bias", "mean", "var")]
        nodes.append(helper.make_node("Conv", [x, w], [f"{name}.c"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("BatchNormalization", [f"{name}.c", *bn], [f"{name}.bn"], epsilon=1e-5))
        if act:
            nodes.append(helper.make_node("Relu", [f"{name}.bn"], [name]))
            return name
        return f"{name}.bn"

    a = conv_bn("conv0", "x", True)
    b = conv_bn("conv1", a, False)
    nodes.append(helper.make_node("Add", [a, b], ["sum"]))
    s = "sum"
    if post_add_relu:
        nodes.append(helper.make_node("Relu", ["sum"], ["sum_relu"]))
        s = "sum_relu"
    nodes.append(helper.make_node("GlobalAveragePool", [s], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc = layers["fc"]
    nodes.append(helper.make_node("Gemm", ["flat", const("fc.w", fc["kernel"]), const("fc.b", fc["bias"])], ["y"]))
    graph = helper.make_graph(
        nodes,
        "ref",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [None, 3, 8, 8])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def test_post_add_relu_float_logits_equal_onnx_reference(tmp_path):
    topo = _topology()
    model = QNet(topo, "float", rngs=nnx.Rngs(3))
    rng = np.random.default_rng(0)
    for name in ("conv0", "conv1"):  # BN statistics that make the pre-ReLU sum clearly mixed-sign
        bn = model.layers[name].bn
        bn.mean[...] = rng.normal(0, 0.3, 8).astype(np.float32)
        bn.var[...] = rng.uniform(0.5, 2.0, 8).astype(np.float32)
        bn.bias[...] = rng.normal(-0.2, 0.5, 8).astype(np.float32)
    ckpt = save_checkpoint(model, tmp_path / "ckpt", {"stage": "float"})
    state, _ = load_checkpoint(ckpt)
    fresh = QNet(topo, "float", rngs=nnx.Rngs(0))
    load_into(fresh, state)
    x = rng.uniform(-1, 1, (32, 8, 8, 3)).astype(np.float32)
    ours = predict(fresh, x)
    x_nchw = x.transpose(0, 3, 1, 2)
    with_relu = _reference(state, True).run(None, {"x": x_nchw})[0]
    without = _reference(state, False).run(None, {"x": x_nchw})[0]
    scale = np.abs(with_relu).max()
    assert np.abs(ours - with_relu).max() <= 1e-5 * scale
    assert np.abs(ours - without).max() > 0.05 * scale  # the ReLU matters on this network
    # fake-quant (8b) applies the same ReLU: its logits are close to the float ones
    fixed = QNet(topo, "fixed", NetConfig.homogeneous(topo, 8, 8), rngs=nnx.Rngs(0))
    load_into(fixed, state)
    assert np.abs(predict(fixed, x) - with_relu).max() < 0.1 * scale
