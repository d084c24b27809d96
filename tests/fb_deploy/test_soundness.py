"""The overflow proof holds at 64 bits, bad BN statistics are refused, and verify/check catch what would break.

Each case is one an outside probe found to pass silently: an int64 ``acc_bound * mul`` wrapping into a small
"proof", NaN/inf/negative-variance BN exported with a warning, an integer network far from its fake-quant model
verified as "bit-exact", and DORY models that DORY would run wrongly passing the checker.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import GOLDEN
from onnx import helper, numpy_helper

from fb_deploy import DeployError, IntegerizationError, check_model, errors, export_dory, integerize, verify
from fb_deploy._cli import main
from fb_schema import QuantizedNetwork


def tampered(tmp_path: Path, key: str, edit, name: str = "net") -> Path:
    """A copy of the golden artifact with npz array ``key`` replaced by ``edit(array)``."""
    out = tmp_path / f"{name}.json"
    shutil.copy(GOLDEN, out)
    arrays = dict(np.load(GOLDEN.with_suffix(".npz")))
    arrays[key] = edit(arrays[key].copy())
    np.savez(out.with_suffix(".npz"), **arrays)
    return out


def set_first(value):
    def edit(a):
        a.flat[0] = value
        return a

    return edit


def true_requant_bound(layer) -> int:
    """max over channels of acc_bound * |mul| + |add|, in Python ints (never wraps)."""
    acc = int(layer.bounds["acc"])
    return max(acc * abs(int(m)) + abs(int(a)) for m, a in zip(layer.mul.reshape(-1), layer.add.reshape(-1)))


def test_overflow_proof_holds_at_64_bits_for_a_huge_gamma(tmp_path):
    net_path = tampered(tmp_path, "conv0.bn.gamma", set_first(1e9))
    net = integerize(QuantizedNetwork.load(net_path), 64)
    for layer in net.layers:
        if layer.op in ("conv2d", "depthwise_conv2d") and layer.mul is not None:
            true = true_requant_bound(layer)
            assert true < 2**63, f"{layer.name}: |acc*mul + add| can reach {true} >= 2^63 (shift {layer.shift})"
            assert layer.bounds["requant"] == true
    model = export_dory(net, tmp_path / "model")
    res = CliRunner().invoke(main, ["verify", str(model), "--artifact", str(net_path)])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize(
    "key,value,field",
    [
        ("conv0.bn.gamma", float("nan"), "bn.gamma"),
        ("conv0.bn.gamma", float("inf"), "bn.gamma"),
        ("conv0.bn.var", -1.0, "bn.var + eps"),
        ("conv0.w", float("nan"), "weight"),
        ("conv0.w_scale", 0.0, "weight scale"),
    ],
)
def test_non_finite_or_non_positive_bn_inputs_are_refused(tmp_path, key, value, field):
    net_path = tampered(tmp_path, key, set_first(value))
    with pytest.raises(IntegerizationError, match=re.escape(f"layer 'conv0': {field}[")) as info:
        integerize(QuantizedNetwork.load(net_path), 64)
    assert "\n" not in str(info.value)
    res = CliRunner().invoke(main, ["integerize", str(net_path), "-o", str(tmp_path / "int.json")])
    assert res.exit_code == 1 and res.output.startswith("Error: layer 'conv0'") and res.output.count("\n") == 1


def test_verify_artifact_fails_beyond_the_stated_tolerance(tmp_path):
    """Goldens and twin agree bit for bit; only the comparison with the fake-quant model sees the departure."""
    model = export_dory(integerize(QuantizedNetwork.load(GOLDEN)), tmp_path / "model")
    other = tampered(tmp_path, "conv0.bn.gamma", lambda g: 3 * g)  # not the network the model was made from
    res = CliRunner().invoke(main, ["verify", str(model), "--artifact", str(other)])
    assert res.exit_code == 1, f"verify passed an integer network that departs from its artifact:\n{res.output}"
    assert "DEPARTS from the fake-quant model by more than 1 step: conv0" in res.output
    assert "8/8" not in res.output and "5/5 layers bit-exact" in res.output
    report = verify(model, artifact=other)
    assert not report.ok and report.departures[0].startswith("conv0 (")
    assert verify(model, artifact=other, max_steps=10**6).ok
    assert verify(model, artifact=GOLDEN).ok


# -- checker: what DORY would run wrongly is an error ------------------------------------------------------------


def renumber(model: onnx.ModelProto) -> None:
    """Rename every node output to consecutive integers (DORY's numeric-names rule) after an edit."""
    names: dict[str, str] = {}
    for node in model.graph.node:
        for j, o in enumerate(node.output):
            names[o] = str(len(names) + 1)
            node.output[j] = names[o]
    for node in model.graph.node:
        for j, t in enumerate(node.input):
            node.input[j] = names.get(t, t)
    for o in model.graph.output:
        o.name = names.get(o.name, o.name)


def insert_after(model: onnx.ModelProto, tensor: str, op: str, **attributes) -> None:
    """Insert ``op`` on ``tensor`` and feed its consumers from it instead."""
    nodes = list(model.graph.node)
    at = next(i for i, n in enumerate(nodes) if tensor in n.output)
    new = helper.make_node(op, [tensor], [tensor + "_new"], **attributes)
    for n in nodes:
        n.input[:] = [new.output[0] if t == tensor else t for t in n.input]
    nodes.insert(at + 1, new)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    renumber(model)


@pytest.fixture(scope="module")
def golden64(tmp_path_factory) -> Path:
    return export_dory(integerize(QuantizedNetwork.load(GOLDEN), 64), tmp_path_factory.mktemp("g64") / "model")


def edited(src: Path, tmp_path: Path, edit_model=None, edit_config=None) -> Path:
    out = tmp_path / "m"
    shutil.copytree(src, out)
    if edit_model is not None:
        model = onnx.load(out / "model.onnx")
        edit_model(model)
        onnx.save(model, out / "model.onnx")
    if edit_config is not None:
        config = json.loads((out / "config.json").read_text())
        edit_config(config)
        (out / "config.json").write_text(json.dumps(config))
    return out


def test_bnrelu_bits_32_on_a_64_bit_model_is_an_error(golden64, tmp_path):
    model = edited(golden64, tmp_path, edit_config=lambda c: c.update(BNRelu_bits=32))
    found = errors(check_model(model))
    assert "requant-overflow" in {f.rule for f in found}, f"no error, only {[str(f) for f in check_model(model)]}"
    with pytest.raises(DeployError, match=r"\[requant-overflow\].*int32"):
        verify(model)


def test_inserted_sigmoid_between_clip_and_conv_is_an_error(golden64, tmp_path):
    def edit(model):
        clip = next(n for n in model.graph.node if n.op_type == "Clip")
        insert_after(model, clip.output[0], "Sigmoid")

    found = errors(check_model(edited(golden64, tmp_path, edit)))
    assert [f.rule for f in found] == ["dropped-op"], f"errors: {[str(f) for f in found]}"
    assert "DORY drops Sigmoid" in found[0].message and "Sigmoid ->" in found[0].node


def test_mul_2_61_at_64_bits_is_an_error(golden64, tmp_path):
    def edit(model):
        for init in model.graph.initializer:
            if init.name == "conv0.mul":
                a = numpy_helper.to_array(init).copy()
                a.flat[0] = 2.0**61
                init.CopyFrom(numpy_helper.from_array(a, init.name))

    found = errors(check_model(edited(golden64, tmp_path, edit)))
    assert "requant-overflow" in {f.rule for f in found}, f"errors: {[str(f) for f in found]}"
    assert ">= 2^63" in next(f for f in found if f.rule == "requant-overflow").message
