"""One-layer networks (fb-profile's GVSOC backend): every MobileNetV1 layer type at every allowed pair."""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from fb_deploy import check_model, errors, export_dory, single_layer_network, verify
from fb_deploy._cli import main
from fb_schema import all_pairs
from fb_schema.topologies import mobilenetv1


def test_every_mobilenetv1_layer_type_at_every_pair(tmp_path):
    count = 0
    for key, lt in mobilenetv1(0.25, 32).layer_types().items():
        pairs = [(p.b_in, p.b_wt) for p in all_pairs()] if lt.configurable else [(b, None) for b in (2, 4, 8)]
        for b_in, b_wt in pairs:
            model_dir = export_dory(single_layer_network(lt, b_in, b_wt, 8), tmp_path / f"{count}")
            assert errors(check_model(model_dir)) == [], (key, b_in, b_wt)
            report = verify(model_dir, n_random=2)
            assert report.ok and report.random_equal, (key, b_in, b_wt, report.to_json())
            count += 1
    assert count == 20 * 9 + 3  # 20 configurable layer types (fc included) x 9 pairs, the pool at 3 widths


def test_padding_and_profiled_layer():
    net = single_layer_network("conv2d_32x32x3_o8_k3x3_s2x2_p1.1.1.1_g1", 2, 4, 8)
    assert net.layers[-1].layer_type.in_ch == 4  # 3 RGB channels padded to pack at 2 bits
    fc = single_layer_network("linear_1x1x64_o16_k1x1_s1x1_p0.0.0.0_g1", 4, 4, 8)
    assert [layer.op for layer in fc.layers] == ["conv2d", "linear"]  # identity 1x1 pointwise, then the FC
    pool = single_layer_network("avgpool_7x7x32_o32_k7x7_s7x7_p0.0.0.0_g1", 4, None, 8)
    assert [layer.op for layer in pool.layers] == ["conv2d", "avgpool"]
    assert (fc.layers[0].weight[0, 0] == np.eye(64)).all()


def test_weightless_first_layer_is_rejected(tmp_path):
    """Real DORY fails on a network whose first node has no weights; the builder never writes one."""
    net = single_layer_network("avgpool_7x7x32_o32_k7x7_s7x7_p0.0.0.0_g1", 8, None, 8)
    pool = net.layers[1]
    pool.inputs, net.layers = (net.input_tensor,), [pool]
    found = errors(check_model(export_dory(net, tmp_path / "m")))
    assert [f.rule for f in found] == ["first-node"]


def test_add_layer_network(tmp_path):
    model_dir = export_dory(single_layer_network("add_8x8x16_o16_k1x1_s1x1_p0.0.0.0_g1", 8, None, 8), tmp_path)
    assert errors(check_model(model_dir)) == []
    assert verify(model_dir).random_equal


def test_layer_cli(tmp_path):
    key = "depthwise_conv2d_16x16x8_o8_k3x3_s1x1_p1.1.1.1_g8"
    res = CliRunner().invoke(main, ["layer", key, "--b-in", "4", "--b-wt", "2", "--b-out", "4", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    info = json.loads((tmp_path / "layer.json").read_text())
    assert info["dory_layer"] == "BNReluConvolution0" and info["b_wt"] == 2 and info["b_out"] == 4
    res = CliRunner().invoke(
        main, ["layer", key.replace("o8", "o9"), "--b-in", "4", "--b-wt", "2", "-o", str(tmp_path)]
    )
    assert res.exit_code != 0 and "KEY" in res.output
    res = CliRunner().invoke(
        main,
        ["layer", "linear_1x1x256_o10_k1x1_s1x1_p0.0.0.0_g1", "--b-in", "2", "--b-wt", "2", "-o", str(tmp_path / "x")],
    )
    assert res.exit_code == 1 and "10 output channels are not a multiple of 4" in res.output


@pytest.mark.parametrize("b_wt", [None, "3"])
def test_layer_cli_needs_valid_weight_bits(tmp_path, b_wt):
    args = ["layer", "conv2d_8x8x8_o8_k1x1_s1x1_p0.0.0.0_g1", "--b-in", "8", "-o", str(tmp_path)]
    res = CliRunner().invoke(main, args + (["--b-wt", b_wt] if b_wt else []))
    assert res.exit_code == 2
