"""LayerType: key format, key round trip, derived output size and MACs, rejected parameters; Precision order."""

import pytest

from fb_schema import LayerType, Precision, SchemaError, all_pairs, higher


def test_key_format_conv():
    t = LayerType.conv2d(224, 224, 3, 24, kernel=3, stride=2)
    assert t.key == "conv2d_224x224x3_o24_k3x3_s2x2_p1.1.1.1_g1"
    assert t.padding == (1, 1, 1, 1)


def test_key_format_depthwise_linear_add_avgpool():
    assert LayerType.depthwise(112, 112, 24, stride=2).key == "depthwise_conv2d_112x112x24_o24_k3x3_s2x2_p1.1.1.1_g24"
    assert LayerType.linear(768, 1000).key == "linear_1x1x768_o1000_k1x1_s1x1_p0.0.0.0_g1"
    assert LayerType.add(7, 7, 96).key == "add_7x7x96_o96_k1x1_s1x1_p0.0.0.0_g1"
    assert LayerType.global_avgpool(7, 7, 768).key == "avgpool_7x7x768_o768_k7x7_s7x7_p0.0.0.0_g1"


def test_key_padding_order_is_top_left_bottom_right():
    t = LayerType("conv2d", 8, 9, 4, 6, (3, 5), (1, 2), (0, 1, 2, 3))
    assert t.key == "conv2d_8x9x4_o6_k3x5_s1x2_p0.1.2.3_g1"
    # rows: (8 + 0 + 2 - 3) // 1 + 1 = 8; cols: (9 + 1 + 3 - 5) // 2 + 1 = 5
    assert t.out_hw == (8, 5)
    assert t.macs == 8 * 5 * 6 * 3 * 5 * 4


@pytest.mark.parametrize(
    "t",
    [
        LayerType.conv2d(224, 224, 3, 24, kernel=3, stride=2),
        LayerType.conv2d(7, 7, 384, 768),
        LayerType.depthwise(112, 112, 24, stride=2),
        LayerType.depthwise(14, 14, 384, kernel=5),
        LayerType.linear(768, 1000),
        LayerType.add(56, 56, 24),
        LayerType.global_avgpool(7, 7, 1280),
        LayerType("conv2d", 8, 9, 4, 6, (3, 5), (1, 2), (0, 1, 2, 3)),
    ],
    ids=lambda t: t.key,
)
def test_from_key_round_trip(t):
    back = LayerType.from_key(t.key)
    assert back == t
    assert back.key == t.key
    assert LayerType.from_json(t.to_json()) == t


def test_to_json_fields():
    assert LayerType.depthwise(8, 8, 8).to_json() == {
        "op": "depthwise_conv2d",
        "in_h": 8,
        "in_w": 8,
        "in_ch": 8,
        "out_ch": 8,
        "kernel": [3, 3],
        "stride": [1, 1],
        "padding": [1, 1, 1, 1],
        "groups": 8,
    }


@pytest.mark.parametrize("bad", ["conv2d_8x8x1_o8", "conv3d_8x8x1_o8_k3x3_s1x1_p1.1.1.1_g1", "", "linear_1x1x8"])
def test_from_key_rejects_garbage(bad):
    with pytest.raises(ValueError):
        LayerType.from_key(bad)


def test_out_hw_and_macs_conv_stride2():
    t = LayerType.conv2d(224, 224, 3, 24, kernel=3, stride=2)
    assert t.out_hw == (112, 112)  # (224 + 2 - 3) // 2 + 1
    assert t.macs == 112 * 112 * 24 * 3 * 3 * 3 == 8_128_512
    assert t.weight_shape_hwio == (3, 3, 3, 24)


def test_out_hw_and_macs_pointwise():
    t = LayerType.conv2d(7, 7, 384, 768)
    assert t.out_hw == (7, 7)
    assert t.macs == 7 * 7 * 768 * 384 == 14_450_688


def test_out_hw_and_macs_depthwise():
    t = LayerType.depthwise(112, 112, 24)
    assert t.out_hw == (112, 112)
    assert t.macs == 112 * 112 * 24 * 9 == 2_709_504
    s2 = LayerType.depthwise(112, 112, 32, stride=2)
    assert s2.out_hw == (56, 56)  # (112 + 2 - 3) // 2 + 1
    assert s2.macs == 56 * 56 * 32 * 9 == 903_168
    assert s2.weight_shape_hwio == (3, 3, 1, 32)
    odd = LayerType.depthwise(7, 7, 16, stride=2)
    assert odd.out_hw == (4, 4)  # (7 + 2 - 3) // 2 + 1


def test_out_hw_and_macs_linear():
    t = LayerType.linear(768, 1000)
    assert t.out_hw == (1, 1)
    assert t.macs == 768_000
    assert t.weight_shape_hwio == (768, 1000)


def test_out_hw_and_macs_add_avgpool():
    a = LayerType.add(7, 7, 96)
    assert a.out_hw == (7, 7)
    assert a.macs == 7 * 7 * 96 == 4704
    assert a.weight_shape_hwio is None
    assert not a.configurable
    p = LayerType.global_avgpool(7, 7, 768)
    assert p.out_hw == (1, 1)
    assert p.macs == 7 * 7 * 768 == 37_632
    assert not p.configurable


def test_configurable_ops():
    assert LayerType.conv2d(4, 4, 2, 2).configurable
    assert LayerType.depthwise(4, 4, 2).configurable
    assert LayerType.linear(4, 2).configurable


@pytest.mark.parametrize(
    "args, field",
    [
        (("conv2d", 8, 8, 8, 16, (3, 3), (1, 1), (1, 1, 1, 1), 2), "groups"),  # grouped, not depthwise
        (("conv2d", 8, 8, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), 8), "groups"),  # conv2d never grouped
        (("depthwise_conv2d", 8, 8, 8, 16, (3, 3), (1, 1), (1, 1, 1, 1), 8), "groups"),  # multiplier 2
        (("depthwise_conv2d", 8, 8, 8, 8, (3, 3), (1, 1), (1, 1, 1, 1), 4), "groups"),
        (("linear", 2, 2, 8, 10), "op"),  # linear needs a 1x1 input
        (("linear", 1, 1, 8, 10, (1, 1), (2, 2)), "op"),
        (("linear", 1, 1, 8, 10, (1, 1), (1, 1), (0, 1, 0, 0)), "op"),
        (("linear", 1, 1, 8, 10, (1, 1), (1, 1), (0, 0, 0, 0), 2), "groups"),
        (("add", 4, 4, 8, 16), "out_ch"),
        (("lstm", 4, 4, 8, 8), "op"),
        (("conv2d", 0, 4, 8, 8), "in_h"),
        (("conv2d", 4, 4, 8, 8, (5, 5)), "kernel"),  # kernel larger than the unpadded input
        (("conv2d", 4, 4, 8, 8, (1, 1), (0, 1)), "stride"),
        (("conv2d", 4, 4, 8, 8, (1, 1), (1, 1), (0, 0, -1, 0)), "padding"),
    ],
)
def test_rejected_layer_types(args, field):
    with pytest.raises(ValueError, match=f"invalid layer type {field}"):
        LayerType(*args)
    # the same parameters in a JSON object are a SchemaError naming the field
    names = ["op", "in_h", "in_w", "in_ch", "out_ch", "kernel", "stride", "padding", "groups"]
    obj = LayerType.conv2d(4, 4, 8, 8).to_json()
    obj.update({n: list(v) if isinstance(v, tuple) else v for n, v in zip(names, args)})
    if len(args) < 9:
        defaults = {"kernel": [1, 1], "stride": [1, 1], "padding": [0, 0, 0, 0], "groups": 1}
        obj.update({n: defaults[n] for n in names[len(args) :]})
    with pytest.raises(SchemaError) as ei:
        LayerType.from_json(obj, "f.json", "layer_types.x")
    assert ei.value.field == f"layer_types.x.{field}"
    assert str(ei.value).startswith(f"f.json: layer_types.x.{field}: ")


def test_precision_order():
    assert Precision(8, 8).higher(Precision(4, 4))
    assert Precision(4, 4).higher(Precision(4, 4))
    assert Precision(4, 8).higher(Precision(4, 2))
    assert not Precision(8, 2).higher(Precision(4, 4))
    assert not Precision(2, 8).higher(Precision(4, 4))
    assert higher(Precision(8, None), Precision(4, None))
    assert not higher(Precision(4, None), Precision(8, None))
    assert not Precision(8, 8).higher(Precision(8, None))
    assert Precision(4, 8).total_bits == 12
    assert Precision(8, None).total_bits == 8
    assert str(Precision(4, 2)) == "4b/2b"
    assert str(Precision(8, None)) == "8b/-"
    assert len(all_pairs()) == 9
    assert [(p.b_in, p.b_wt) for p in all_pairs((8, 2))] == [(2, 2), (2, 8), (8, 2), (8, 8)]
