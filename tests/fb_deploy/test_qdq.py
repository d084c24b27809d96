"""QDQ export: standard ONNX, runnable in ONNX Runtime, within the stated tolerance of the integer reference."""

from __future__ import annotations

import json

import numpy as np
import onnx
from click.testing import CliRunner
from conftest import GOLDEN

from fb_deploy import IntegerNetwork, build_qdq_model, compare_qdq, integerize
from fb_deploy._cli import main


def test_golden_qdq_model(golden_qn):
    net = integerize(golden_qn)
    model = build_qdq_model(net)
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv", "MatMul"} <= ops
    props = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert props["fb_deploy.tensor_bits"]["conv0"] == 4 and props["fb_deploy.weight_bits"]["dw1"] == 4
    x = np.random.default_rng(0).uniform(0, 1, (32, 8, 8, 1))
    agreement = compare_qdq(net, model, x)
    # float32 requantization in ONNX Runtime: at most one step on the logits of this shallow net
    assert agreement["max_abs_lsb"] <= 1 and agreement["argmax_agreement"] == 1.0
    assert agreement["exact_fraction"] > 0.7


def test_mixed_qdq_within_tolerance(mixed_export):
    """Deeper mixed nets: rounding steps accumulate, but stay within 2% of the largest logit."""
    _, model_dir = mixed_export
    net = IntegerNetwork.load(model_dir / "integer_network.json")
    model = build_qdq_model(net)
    x = np.random.default_rng(1).uniform(0, 1, (16, *net.input_shape_nhwc[1:]))
    agreement = compare_qdq(net, model, x)
    assert agreement["max_rel"] < 0.02 and agreement["argmax_agreement"] >= 0.9, agreement


def test_qdq_cli(tmp_path):
    res = CliRunner().invoke(main, ["export", str(GOLDEN), "-o", str(tmp_path), "--format", "qdq"])
    assert res.exit_code == 0, res.output
    assert "argmax agreement 100%" in res.output
    onnx.checker.check_model(onnx.load(tmp_path / "model_qdq.onnx"), full_check=True)
