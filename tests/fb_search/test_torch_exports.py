"""Real PyTorch exports (examples/onnx/, written by examples/export_torch.py with the torch it pins): both
exporters' files of ResNet-8 and DS-CNN import with the example topologies' layer types, and the imported
float checkpoint reproduces the logits torch computed."""

import json
from pathlib import Path

import numpy as np
import pytest

from fb_schema.topologies import load_topology
from fb_search import import_onnx_model, predict
from fb_search._api import _float_model

pytest.importorskip("onnx")
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def test_manifest_pins_the_torch_that_wrote_the_files():
    manifest = json.loads((EXAMPLES / "onnx" / "manifest.json").read_text())
    pinned = next(line for line in (EXAMPLES / "export_torch.py").read_text().splitlines() if "TORCH_VERSION =" in line)
    assert manifest["torch"].split("+")[0] in pinned
    for files in manifest["files"].values():
        assert all((EXAMPLES / "onnx" / f).is_file() for f in files)


@pytest.mark.slow
@pytest.mark.parametrize("net", ["resnet8", "dscnn"])
@pytest.mark.parametrize("exporter", ["torchscript", "dynamo"])
def test_torch_export_imports_and_matches_torch(tmp_path, net, exporter):
    topo, ckpt = import_onnx_model(EXAMPLES / "onnx" / f"{net}_{exporter}.onnx", tmp_path, (-4.0, 4.0), name=net)
    example = load_topology(EXAMPLES / f"{net}.topology.json")
    assert list(topo.layer_types()) == list(example.layer_types())
    assert [(layer.name, layer.act) for layer in topo.layers] == [(layer.name, layer.act) for layer in example.layers]
    io = np.load(EXAMPLES / "onnx" / f"{net}_io.npz")
    got = predict(_float_model(topo, ckpt), np.ascontiguousarray(io["x"].transpose(0, 2, 3, 1)))
    assert np.abs(got - io["logits"]).max() <= 1e-4 * np.abs(io["logits"]).max()
