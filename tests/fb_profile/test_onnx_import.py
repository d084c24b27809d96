"""The ONNX -> topology converter (fb_profile.import_onnx), shared by fb-search import-onnx and fb-profile --onnx:
every supported op in both layouts, the example topologies, and one-line errors."""

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from fb_profile import import_onnx, layer_types_of
from fb_profile._cli import main as profile_cli
from fb_schema.topologies import load_topology

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_resnet8_imports_as_the_example_topology(onnx_nets):
    net = import_onnx(onnx_nets.resnet8(softmax=True), name="resnet8", input_range=(-3.0, 3.0))
    example = load_topology(EXAMPLES / "resnet8.topology.json")
    assert net.topology == example  # names, layer types, inputs, activations (post-add ReLU), biases
    assert all(net.topology.layer(n).bias for n in ("conv0", "conv5", "fc"))  # folded-BN convs carry a bias
    assert set(net.weights["conv0"]) == {"kernel", "bias"} and net.weights["conv0"]["kernel"].shape == (3, 3, 3, 16)


@pytest.mark.parametrize("nhwc", [False, True])
def test_dscnn_in_both_layouts_imports_as_the_example_topology(onnx_nets, nhwc):
    net = import_onnx(onnx_nets.dscnn(nhwc=nhwc), name="dscnn", input_range=(-128.0, 128.0))
    example = load_topology(EXAMPLES / "dscnn.topology.json")
    assert list(net.topology.layer_types()) == list(example.layer_types())
    assert net.topology.input_layout == ("nhwc" if nhwc else "nchw")
    stem = net.topology.layer("conv0")
    assert stem.layer_type.padding == (4, 1, 5, 1)  # the Pad node folded into the conv's padding
    assert not stem.bias and set(net.weights["conv0"]["bn"]) == {"gamma", "beta", "mean", "var"}
    # explicit BatchNormalization keeps its statistics; its epsilon (1e-3) is folded into the variance
    bn_node = next(n for n in onnx_nets.dscnn(nhwc=nhwc).graph.node if n.op_type == "BatchNormalization")
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in onnx_nets.dscnn(nhwc=nhwc).graph.initializer}
    np.testing.assert_allclose(net.weights["conv0"]["bn"]["var"], inits[bn_node.input[4]] + 1e-3 - 1e-5, rtol=1e-6)


def test_maxpool_clip_and_layer_names(onnx_nets):
    net = import_onnx(onnx_nets.maxpool_net())
    layers = [(layer.name, layer.op, layer.act) for layer in net.topology.layers]
    assert layers == [
        ("conv0", "conv2d", "relu6"),
        ("maxpool0", "maxpool", "none"),
        ("conv1", "conv2d", "relu"),
        ("pool", "avgpool", "none"),
        ("fc", "linear", "none"),
    ]
    assert net.topology.layer("maxpool0").layer_type.key == "maxpool_16x16x16_o16_k3x3_s2x2_p1.1.1.1_g1"


def test_profile_onnx_gives_the_imported_layer_types(onnx_nets, tmp_path):
    for model in (onnx_nets.resnet8(), onnx_nets.dscnn(nhwc=True), onnx_nets.maxpool_net()):
        path = tmp_path / "m.onnx"
        onnx.save(model, str(path))
        imported = list(import_onnx(path).topology.layer_types())
        assert list(layer_types_of(path)) == imported
        out = tmp_path / "t.json"
        result = CliRunner().invoke(profile_cli, ["sweep", "--onnx", str(path), "--target", "pulp-model:xpulpnn1",
                                                  "-o", str(out), "--no-cache"])  # fmt: skip
        assert result.exit_code == 0, result.output
        table = json.loads(out.read_text())
        assert list(table["layer_types"]) == imported and not table["failed"]


def _graph(nodes, inits, in_shape=(1, 4, 8, 8)):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)
    return helper.make_model(
        helper.make_graph(nodes, "g", [x], [y], inits), opset_imports=[helper.make_opsetid("", 17)]
    )


def _w(name, shape):
    return onnx.numpy_helper.from_array(np.ones(shape, np.float32), name)


@pytest.mark.parametrize(
    "nodes, inits, fragment",
    [
        ([helper.make_node("LeakyRelu", ["x"], ["y"], name="lr")], [], "node 'lr' (LeakyRelu): unsupported op"),
        (
            [helper.make_node("Conv", ["x", "w"], ["c"], name="c", kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("Clip", ["c", "lo", "hi"], ["y"], name="clip3")],
            [_w("w", (4, 4, 3, 3)), onnx.numpy_helper.from_array(np.float32(0), "lo"),
             onnx.numpy_helper.from_array(np.float32(3), "hi")],
            "node 'clip3' (Clip): only Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU)",
        ),
        (
            [helper.make_node("Conv", ["x", "w"], ["y"], name="dil", kernel_shape=[3, 3], dilations=[2, 2])],
            [_w("w", (4, 4, 3, 3))],
            "node 'dil' (Conv): dilated convolutions are not supported",
        ),
        (
            [helper.make_node("Conv", ["x", "w"], ["c"], name="c", kernel_shape=[1, 1]),
             helper.make_node("Transpose", ["c"], ["y"], name="tr", perm=[0, 1, 3, 2])],
            [_w("w", (4, 4, 1, 1))],
            "node 'tr' (Transpose): only NHWC <-> NCHW transposes",
        ),
    ],
)  # fmt: skip
def test_unsupported_graphs_are_one_line_errors(nodes, inits, fragment):
    with pytest.raises(ValueError) as err:
        import_onnx(_graph(nodes, inits))
    assert fragment in str(err.value) and "\n" not in str(err.value)


def test_a_graph_without_classifier_is_refused_for_import_but_profiled():
    conv = helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[3, 3], pads=[1] * 4)
    model = _graph([conv], [_w("w", (8, 4, 3, 3))])
    with pytest.raises(ValueError, match="must end in a linear classifier"):
        import_onnx(model)
    assert list(layer_types_of(model)) == ["conv2d_8x8x4_o8_k3x3_s1x1_p1.1.1.1_g1"]
