"""Bring your own network: an ONNX ResNet-8 and DS-CNN (written here with onnx.helper) through import-onnx,
predict (vs onnxruntime), a short search, free bits, fine-tuning, DORY export, check and bit-exact verify."""

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from fb_deploy._cli import main as deploy_cli
from fb_heuristic._cli import main as heuristic_cli
from fb_profile._cli import main as profile_cli
from fb_schema import NetConfig, QuantizedNetwork
from fb_schema.topologies import load_topology
from fb_search._cli import main as search_cli

SHAPES = {"resnet8": (3, 32, 32), "dscnn": (1, 49, 10)}


def _ok(cli, args):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, f"{args[0]}: {result.output}\n{result.exception!r}"
    return result.output


def _network(onnx_nets, tmp_path, name):
    model = onnx_nets.resnet8(softmax=True) if name == "resnet8" else onnx_nets.dscnn()
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.0, 1.0, (192, *SHAPES[name])), -3, 3).astype(np.float32)
    y = onnx_nets.run_onnxruntime(model, x).argmax(1)  # labels: the network's own decisions
    data = tmp_path / "data.npz"
    np.savez(data, x_train=x[:160], y_train=y[:160], x_val=x[160:], y_val=y[160:])
    return model, path, data, x


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet8", "dscnn"])
def test_onnx_network_end_to_end(onnx_nets, tmp_path, name):
    model, onnx_path, data, x = _network(onnx_nets, tmp_path, name)
    out = tmp_path / "run"
    out.mkdir()  # an existing empty directory is fine
    d = ["--data", data, "--layout", "nchw"]
    table = _ok(search_cli, ["import-onnx", onnx_path, "--out", out, *d])
    assert "conv0\tconv2d_" in table
    topo = load_topology(out / "topology.json")
    assert topo.input_layout == "nchw" and topo.input_signed
    ckpt = out / "checkpoints" / "float"

    # predict == onnxruntime (the model ends in a Softmax: compare logits through the same softmax)
    np.save(tmp_path / "x.npy", x[:16])
    _ok(search_cli, ["predict", "--ckpt", ckpt, "--input", tmp_path / "x.npy", "-o", tmp_path / "y.npy"])
    logits = np.load(tmp_path / "y.npy")
    assert logits.shape == (16, topo.num_classes) and logits.dtype == np.float32
    pre_softmax = onnx.helper.make_model(model.graph, opset_imports=model.opset_import)
    if name == "resnet8":  # drop the Softmax to read the reference logits
        last = pre_softmax.graph.node[-1]
        pre_softmax.graph.node.remove(last)
        del pre_softmax.graph.output[:]
        pre_softmax.graph.output.append(onnx.helper.make_tensor_value_info(last.input[0], 1, None))
    ref = onnx_nets.run_onnxruntime(pre_softmax, x[:16])
    assert np.abs(logits - ref).max() <= 1e-3 * np.abs(ref).max()

    # same layer types from fb-profile's --onnx and the imported topology
    types = json.loads(_ok(profile_cli, ["layer-types", "--onnx", onnx_path, "--json"]))
    keys = [t["key"] for t in types] if isinstance(types, list) else list(types)
    assert keys == list(topo.layer_types())

    _ok(search_cli, ["search", "--float-ckpt", ckpt, *d, "--mu", "0.03", "--steps", "6", "--out", out])
    (config,) = (out / "configs").glob("*.json")
    tbl = tmp_path / "table.json"
    _ok(profile_cli, ["sweep", "--network", out / "topology.json", "--target", "pulp-model:xpulpnn1", "-o", tbl])
    _ok(heuristic_cli, ["apply", config, tbl, "-o", tmp_path / "fb.json"])
    assert NetConfig.load(tmp_path / "fb.json").network == topo.name
    _ok(search_cli, ["finetune", "--config", tmp_path / "fb.json", "--ckpt", ckpt, *d, "--steps", "6",
                     "--out", out / "q"])  # fmt: skip
    (artifact,) = (out / "q").glob("*/network.json")
    qn = QuantizedNetwork.load(artifact)
    assert qn.input["signed"] and qn.input["range"] == [float(v) for v in topo.input_range]
    assert qn.doc["topology"]["name"] == topo.name
    _ok(deploy_cli, ["export", artifact, "-o", tmp_path / "deploy"])
    checked = _ok(deploy_cli, ["check", tmp_path / "deploy"])
    assert "0 error(s)" in checked
    verified = _ok(deploy_cli, ["verify", tmp_path / "deploy"])
    assert "bit-exact" in verified and "mismatch" not in verified.lower()
