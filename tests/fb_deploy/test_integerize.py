"""Integerization and the integer reference executor: requant arithmetic, overflow proofs, one-line errors."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from fb_deploy import (
    IntegerizationError,
    IntegerNetwork,
    OverflowProofError,
    integer_logits,
    integerize,
    random_quantized_network,
    run_layers,
    run_reference,
)
from fb_schema import LayerType, NetConfig, Precision, QuantizedNetwork
from fb_schema.topologies import INPUT, Topology, TopologyLayer, digitsnet


def test_golden_integerizes_close_to_fake_quant(golden_qn):
    net = integerize(golden_qn)
    assert net.requant_bits == 32
    assert [layer.op for layer in net.layers] == ["conv2d", "depthwise_conv2d", "add", "avgpool", "linear"]
    conv0 = net.layers[0]
    assert conv0.weight.dtype == np.int64 and conv0.weight.min() >= -128 and conv0.weight.max() <= 127
    assert conv0.out_bits == 4 and conv0.mul.shape == (8,) and conv0.shift == 24
    assert conv0.bounds["acc"] == 9 * 255 * 128  # fan-in 3x3x1, u8 input, i8 weights
    assert conv0.bounds["requant"] < 2**31
    pool = net.layers[3]
    assert int(pool.mul) % 64 == 0  # multiple of the 8x8 window, as PULP-NN divides it inside the kernel
    logits = integer_logits(net, net.ref_inputs)  # what the pipeline scores the deployed network with
    ref = net.ref_logits.astype(np.float64)
    assert np.abs(logits - ref).max() < 0.01 * np.abs(ref).max()
    assert (logits.argmax(1) == ref.argmax(1)).all()


def test_requant_matches_real_arithmetic(golden_qn):
    """Layer by layer, the integer requant equals round(real / step) up to 1 LSB (ties and rounded mul)."""
    net = integerize(golden_qn)
    with np.load(golden_qn.npz_path) as npz:
        arrays = {k: npz[k].astype(np.float64) for k in npz.files}
    x = net.quantize_input(net.ref_inputs)
    values = run_layers(net, x)
    node = golden_qn.nodes[1]  # dw1: 4-bit input, 4-bit weights, 8-bit output
    layer = net.layers[1]
    s_in = golden_qn.tensors["conv0"]["scale"]
    s_w = arrays[node["w_quant"]["scale"]]
    from fb_deploy._reference import conv_int

    acc = conv_int(values["conv0"], layer.weight, layer.layer_type)
    bn = {k: arrays[node["bn"][k]] for k in ("gamma", "beta", "mean", "var")}
    real = (acc * s_in * s_w - bn["mean"]) / np.sqrt(bn["var"] + 1e-5) * bn["gamma"] + bn["beta"]
    expected = np.clip(np.round(real / golden_qn.tensors["dw1"]["scale"]), 0, 255)
    assert np.abs(values["dw1"] - expected).max() <= 1
    assert (values["dw1"] == expected).mean() > 0.99


def test_reference_is_deterministic_and_saved_network_round_trips(golden_qn, tmp_path):
    net = integerize(golden_qn)
    net.save(tmp_path / "int.json")
    back = IntegerNetwork.load(tmp_path / "int.json")
    x = np.random.default_rng(3).integers(0, 256, (5, 8, 8, 1))
    assert np.array_equal(run_reference(net, x), run_reference(back, x))
    assert run_reference(net, x).shape == (5, 10)
    with pytest.raises(ValueError, match="integers in \\[0, 255\\]"):
        run_reference(net, x + 300)


def _wide_net(tmp_path, in_ch: int, out_bits_layer: str = "conv") -> QuantizedNetwork:
    """conv 1x1 (in_ch -> 16) -> global pool -> linear: an 8-bit input with a large fan-in."""
    conv = LayerType.conv2d(2, 2, in_ch, 16)
    topo = Topology(
        "wide",
        (2, 2, in_ch),
        16,
        (
            TopologyLayer("conv", conv, (INPUT,)),
            TopologyLayer("pool", LayerType.global_avgpool(2, 2, 16), ("conv",), "none"),
            TopologyLayer("fc", LayerType.linear(16, 16), ("pool",), "none"),
        ),
    )
    return random_quantized_network(topo, NetConfig.homogeneous(topo, 8, 8), path=tmp_path / "wide.json", n_calib=2)


def test_overflow_proof_names_the_layer_and_auto_widens(tmp_path):
    qn = _wide_net(tmp_path, 1024)  # |acc| <= 1024*255*128 = 2^25: a precise multiplier cannot fit int32
    with pytest.raises(OverflowProofError, match=r"^layer 'conv': .*int32.*requant bits 64$"):
        integerize(qn, requant_bits=32)
    net = integerize(qn)  # auto
    assert net.requant_bits == 64
    assert net.layers[0].bounds["requant"] < 2**63 and np.abs(net.layers[0].mul).max() >= 256


def test_accumulator_overflow_is_an_error_at_any_width(tmp_path):
    topo = Topology("huge", (1, 1, 65800), 4, (TopologyLayer("fc", LayerType.linear(65800, 4), (INPUT,), "none"),))
    qn = random_quantized_network(topo, NetConfig.homogeneous(topo, 8, 8), path=tmp_path / "h.json", n_calib=1, n_ref=1)
    with pytest.raises(OverflowProofError, match=r"^layer 'fc': accumulator .* overflows int32$"):
        integerize(qn, requant_bits=64)


def test_unpackable_channels_are_named(tmp_path):
    topo = digitsnet()
    cfg = NetConfig.homogeneous(topo, 8, 8).with_precisions({"fc": Precision(4, 2)})
    qn = random_quantized_network(topo, cfg, path=tmp_path / "d.json", n_calib=2)
    with pytest.raises(IntegerizationError, match=r"^layer 'fc': DORY cannot pack it: 10 output channels .* of 4$"):
        integerize(qn)


def test_unsupported_width_is_named(golden_qn, tmp_path):
    doc = copy.deepcopy(golden_qn.doc)
    doc["tensors"]["dw1"]["bits"] = 6
    qn = QuantizedNetwork(doc, golden_qn.npz_path)
    with pytest.raises(IntegerizationError, match=r"^layer 'dw1': output has 6 bits; DORY kernels exist for"):
        integerize(qn)
    doc["tensors"]["dw1"]["bits"] = 32
    with pytest.raises(IntegerizationError, match=r"^layer 'dw1': only the final linear layer may output int32"):
        integerize(QuantizedNetwork(doc, golden_qn.npz_path))


def test_unsupported_pooling_is_named(golden_qn):
    doc = copy.deepcopy(golden_qn.doc)
    doc["nodes"][3]["layer_type"] = "avgpool_8x8x8_o8_k3x3_s1x1_p1.1.1.1_g1"
    with pytest.raises(IntegerizationError, match=r"^layer 'pool': padded average pooling is not supported"):
        integerize(QuantizedNetwork(doc, golden_qn.npz_path))


def test_overflow_on_the_command_line_is_one_line(tmp_path):
    from click.testing import CliRunner

    from fb_deploy._cli import main

    _wide_net(tmp_path, 1024)
    res = CliRunner().invoke(
        main, ["integerize", str(tmp_path / "wide.json"), "-o", str(tmp_path / "i.json"), "--requant-bits", "32"]
    )
    assert res.exit_code == 1 and res.output.startswith("Error: layer 'conv': ")
    assert len(res.output.strip().splitlines()) == 1
