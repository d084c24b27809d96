"""Built-in topologies: layer counts, shapes, unique layer types, fixed inputs; shape checking."""

import pytest

from fb_schema import LayerType, NetConfig
from fb_schema.topologies import (
    INPUT,
    Topology,
    TopologyLayer,
    digitsnet,
    get_topology,
    mobilenetv1,
    mobilenetv2,
    tinynet,
)


def _out_shapes(net):
    return {layer.name: (*layer.layer_type.out_hw, layer.layer_type.out_ch) for layer in net.layers}


def test_mobilenetv1_075_224_has_20_unique_configurable_types():
    net = mobilenetv1(0.75, 224)
    assert len(net.layers) == 1 + 13 * 2 + 2  # stem, 13 dw/pw blocks, pool, fc
    configurable = {k for k, t in net.layer_types().items() if t.op in ("conv2d", "depthwise_conv2d", "linear")}
    assert len(configurable) == 20
    assert net.layers[0].layer_type.key == "conv2d_224x224x3_o24_k3x3_s2x2_p1.1.1.1_g1"
    assert net.layer("b13_pw").layer_type.key == "conv2d_7x7x768_o768_k1x1_s1x1_p0.0.0.0_g1"
    assert net.layer("pool").layer_type.key == "avgpool_7x7x768_o768_k7x7_s7x7_p0.0.0.0_g1"
    assert net.layer("fc").layer_type.key == "linear_1x1x768_o1000_k1x1_s1x1_p0.0.0.0_g1"
    # blocks 7..11 share one depthwise and one pointwise type
    assert len({net.layer(f"b{i}_dw").layer_type.key for i in range(7, 12)}) == 1
    assert len({net.layer(f"b{i}_pw").layer_type.key for i in range(7, 12)}) == 1
    # 325 M multiply-accumulates (Howard et al., Table 6: 0.75 MobileNet-224)
    assert sum(layer.layer_type.macs for layer in net.layers if layer.layer_type.configurable) == 325_400_448


def test_mobilenetv1_width_and_resolution():
    net = mobilenetv1(1.0, 128, num_classes=10)
    assert net.input_shape == (128, 128, 3)
    assert _out_shapes(net)["b13_pw"] == (4, 4, 1024)
    assert net.layer("fc").layer_type == LayerType.linear(1024, 10)


def test_mobilenetv2_10_224_counts():
    net = mobilenetv2(1.0, 224)
    ops = [layer.op for layer in net.layers]
    assert len(net.layers) == 64
    assert ops.count("add") == 10
    assert ops.count("avgpool") == 1
    assert ops.count("linear") == 1
    assert ops.count("depthwise_conv2d") == 17
    assert ops.count("conv2d") == 1 + 1 + 16 * 2 + 1  # stem, block 1 projection, 16 expand+project, conv_last
    assert sum(layer.layer_type.configurable for layer in net.layers) == 53
    assert len(net.layer_types()) == 37
    assert [layer.name for layer in net.layers if layer.op == "add"] == [
        f"b{i}_add" for i in (3, 5, 6, 8, 9, 10, 12, 13, 15, 16)
    ]
    shapes = _out_shapes(net)
    assert shapes["conv0"] == (112, 112, 32)
    assert shapes["b1_project"] == (112, 112, 16)
    assert shapes["b2_dw"] == (56, 56, 96)
    assert shapes["b17_project"] == (7, 7, 320)
    assert shapes["conv_last"] == (7, 7, 1280)
    assert net.layer("b3_add").inputs == ("b2_project", "b3_project")
    assert net.layer("b6_add").inputs == ("b5_add", "b6_project")
    assert net.layer("b3_project").act == "none"
    # 300 M multiply-accumulates (Sandler et al., Table 3)
    assert sum(layer.layer_type.macs for layer in net.layers if layer.layer_type.configurable) == 300_774_272


def test_mobilenetv2_b_in_fixed_after_adds():
    net = mobilenetv2(1.0, 224)
    fixed = [layer.name for layer in net.layers if layer.layer_type.configurable and net.b_in_fixed(layer.name)]
    # the stem reads the image; every block after a residual add reads the add's 8-bit output
    assert fixed == ["conv0"] + [f"b{i}_expand" for i in (4, 6, 7, 9, 10, 11, 13, 14, 16, 17)]
    assert all(net.b_in_fixed(layer.name) for layer in net.layers if layer.op in ("add", "avgpool"))
    assert not net.b_in_fixed("b3_expand")  # fed by a projection, not an add
    assert not net.b_in_fixed("fc")  # fed by the pool
    cfg = NetConfig.homogeneous(net, 4, 4)
    assert [lc.name for lc in cfg.layers if lc.b_in_fixed and lc.b_wt is not None] == fixed
    assert cfg.layer("b4_expand").precision.b_in == 8
    assert cfg.layer("b4_expand").precision.b_wt == 4
    assert cfg.layer("b4_dw").precision.b_in == 4


def test_mobilenetv2_width_rounding():
    net = mobilenetv2(0.35, 96)
    shapes = _out_shapes(net)
    assert shapes["conv0"] == (48, 48, 16)  # make_divisible(32 * 0.35 = 11.2) = 16
    assert shapes["b1_project"][2] == 8  # make_divisible(5.6) = 8
    assert shapes["conv_last"] == (3, 3, 1280)  # width < 1 keeps 1280


def test_digitsnet_shapes():
    net = digitsnet()
    assert net.input_shape == (16, 16, 1)
    assert [layer.name for layer in net.layers] == [
        "conv0",
        "dw1",
        "pw1",
        "dw2",
        "pw2",
        "dw3",
        "pw3",
        "add3",
        "pool",
        "fc",
    ]
    assert _out_shapes(net) == {
        "conv0": (16, 16, 16),
        "dw1": (16, 16, 16),
        "pw1": (16, 16, 32),
        "dw2": (8, 8, 32),
        "pw2": (8, 8, 64),
        "dw3": (8, 8, 64),
        "pw3": (8, 8, 64),
        "add3": (8, 8, 64),
        "pool": (1, 1, 64),
        "fc": (1, 1, 10),
    }
    assert net.layer("add3").inputs == ("pw2", "pw3")
    assert [layer.name for layer in net.layers if net.b_in_fixed(layer.name)] == ["conv0", "add3", "pool"]
    assert len(net.layer_types()) == 10
    assert {t.op for t in net.layer_types().values()} == {"conv2d", "depthwise_conv2d", "add", "avgpool", "linear"}
    assert net.output == "fc"


def test_tinynet_shapes():
    net = tinynet()
    assert [(layer.name, layer.op, layer.inputs) for layer in net.layers] == [
        ("conv0", "conv2d", (INPUT,)),
        ("dw1", "depthwise_conv2d", ("conv0",)),
        ("add1", "add", ("conv0", "dw1")),
        ("pool", "avgpool", ("add1",)),
        ("fc", "linear", ("pool",)),
    ]
    assert list(net.layer_types()) == [
        "conv2d_8x8x1_o8_k3x3_s1x1_p1.1.1.1_g1",
        "depthwise_conv2d_8x8x8_o8_k3x3_s1x1_p1.1.1.1_g8",
        "add_8x8x8_o8_k1x1_s1x1_p0.0.0.0_g1",
        "avgpool_8x8x8_o8_k8x8_s8x8_p0.0.0.0_g1",
        "linear_1x1x8_o10_k1x1_s1x1_p0.0.0.0_g1",
    ]
    assert [net.b_in_fixed(layer.name) for layer in net.layers] == [True, False, True, True, False]
    assert [c.name for c in net.consumers("conv0")] == ["dw1", "add1"]


def test_get_topology():
    assert get_topology("mobilenetv1", width=0.5, resolution=128) == mobilenetv1(0.5, 128)
    with pytest.raises(ValueError, match="digitsnet"):
        get_topology("resnet18")


def test_topology_checks_shapes_and_names():
    conv = LayerType.conv2d(8, 8, 1, 4)
    with pytest.raises(ValueError, match="expects"):
        Topology("t", (8, 8, 3), 10, (TopologyLayer("c", conv, (INPUT,)),))
    with pytest.raises(ValueError, match="unknown input"):
        Topology("t", (8, 8, 1), 10, (TopologyLayer("c", conv, ("nope",)),))
    with pytest.raises(ValueError, match="duplicate"):
        Topology("t", (8, 8, 1), 10, (TopologyLayer("c", conv, (INPUT,)), TopologyLayer("c", conv, (INPUT,))))
    with pytest.raises(ValueError, match="2 input"):
        Topology("t", (8, 8, 4), 10, (TopologyLayer("a", LayerType.add(8, 8, 4), (INPUT,)),))
