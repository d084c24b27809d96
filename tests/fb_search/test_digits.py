"""Acceptance on scikit-learn's digits (numbers are printed; counted in images of the 540 validation images).

The pipeline fixture (conftest.py) trains once per session: float digitsnet, a mu sweep of 4 values per variant,
an 8b/8b TQT fine-tune.
"""

import json

import numpy as np
import pytest

import fb_search
from fb_schema import NetConfig, Precision, QuantizedNetwork

pytestmark = pytest.mark.slow


def test_float_accuracy(pipeline):
    assert pipeline["meta"]["val_errors"] <= 16  # >= 97 % of 540


def test_tqt_8bit_close_to_float(pipeline, ref_forward):
    float_errors = pipeline["meta"]["val_errors"]
    tqt_errors = round((1 - pipeline["acc8"]) * 540)
    print(f"float {float_errors} errors, 8b/8b TQT {tqt_errors} errors")
    assert tqt_errors - float_errors <= 3
    qn = QuantizedNetwork.load(pipeline["artifact"])  # schema-valid artifact
    assert qn.network == "digitsnet" and qn.tensors["fc"]["bits"] == 32
    assert all(n["w_quant"]["bits"] == 8 for n in qn.nodes if n["w_quant"])
    logits, stored = ref_forward(pipeline["artifact"])
    # float64 numpy vs the float32 model: a value within rounding error of a grid midpoint may land one step
    # apart, so logits agree closely but not to the last digit; the decisions agree.
    np.testing.assert_array_equal(logits.argmax(-1), stored.argmax(-1))
    assert np.abs(logits - stored).max() <= 0.02 * np.abs(stored).max()
    tuned = NetConfig.load(qn.npz_path.with_name("config.json"))
    assert tuned.metrics["accuracy_stage"] == "tqt" and tuned.metrics["val_accuracy"] == pipeline["acc8"]


def test_sweep_configs(pipeline):
    for variant, configs in pipeline["sweeps"].items():
        distinct = {tuple(c.precisions().items()) for c in configs}
        print(f"{variant}: {len(distinct)} distinct configs, bops {[c.metrics['bops'] for c in configs]}")
        assert len(distinct) >= 3
        assert configs[0].metrics["bops"] == max(c.metrics["bops"] for c in configs)
        assert all(p.b_in == 8 and p.b_wt in (8, None) for p in configs[0].precisions().values())  # mu = 0
        assert configs[-1].metrics["expected_bits"] < configs[0].metrics["expected_bits"] - 1
        for cfg in configs:
            assert cfg.provenance["method"] == f"bb-{variant}" and cfg.metrics["accuracy_stage"] == "bb-eval"
            assert cfg.metrics["bops"] == cfg.bops() and 0 < cfg.metrics["val_accuracy"] <= 1
            assert cfg.layer("conv0").precision == Precision(8, 8)
            saved = NetConfig.load(pipeline["out"] / "configs" / f"bb-{variant}-mu{cfg.provenance['mu']:g}-s0.json")
            assert saved.sha256() == cfg.sha256()
            if variant == "locked":
                assert all(c.b_in == c.b_wt for c in cfg.layers if c.b_wt is not None and not c.b_in_fixed)
            sens = cfg.metrics["sensitivity"]
            assert set(sens) == {"dw1", "pw1", "dw2", "pw2", "dw3", "pw3", "fc"}
            assert len(sens["pw1"]) == (3 if variant == "locked" else 9)
            assert sens["pw1"]["2,2"] > sens["pw1"]["8,8"]  # 2-bit costs more than 8-bit


def test_metrics_jsonl(pipeline):
    lines = (pipeline["out"] / "checkpoints" / "metrics.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert {"loss", "acc", "ebits", "step", "stage"} <= set(records[-1])
    assert any(r["stage"].startswith("bb-locked") for r in records)


def test_evaluate_configs(pipeline, digits):
    c8 = fb_search.homogeneous("digitsnet", 8, 8)
    acc = fb_search.evaluate(c8, pipeline["ckpt"], digits)
    c2 = fb_search.homogeneous("digitsnet", 2, 2)
    acc2 = fb_search.evaluate(c2, pipeline["ckpt"], digits)
    print(f"evaluate float weights at 8b/8b: {acc:.4f}, at 2b/2b: {acc2:.4f}")
    assert acc >= pipeline["meta"]["val_accuracy"] - 3 / 540 and acc2 < acc
