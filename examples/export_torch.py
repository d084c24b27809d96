"""Real PyTorch exports of the MLPerf Tiny ResNet-8 and DS-CNN, committed under ``examples/onnx/`` so the tests
read what PyTorch writes without depending on torch.

Run (torch pinned: the committed files were written with exactly this version)::

    pip install torch==2.13.0 onnxscript
    python examples/export_torch.py

For each network it writes ``<net>_torchscript.onnx`` (TorchScript exporter, opset 17: BN folded into the
convs' biases), ``<net>_dynamo.onnx`` + ``<net>_dynamo.onnx.data`` (the dynamo exporter with its defaults:
external weights) and ``<net>_io.npz`` (4 inputs, NCHW, and the logits torch computed for them). Weights are
random (seeded) with non-trivial BatchNorm statistics; no training data is involved.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

TORCH_VERSION = "2.13.0"
OUT = Path(__file__).resolve().parent / "onnx"


def _require_torch():
    import torch

    if torch.__version__.split("+")[0] != TORCH_VERSION:
        sys.exit(f"this script pins torch=={TORCH_VERSION}; found {torch.__version__}")
    return torch


def build_models(torch):
    nn = torch.nn

    class Block(nn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

        def forward(self, x):
            y = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
            s = x if self.short is None else self.short(x)
            return torch.relu(s + y)

    class ResNet8(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU())
            self.blocks = nn.Sequential(Block(16, 16, 1), Block(16, 32, 2), Block(32, 64, 2))
            self.fc = nn.Linear(64, 10)

        def forward(self, x):
            x = self.blocks(self.stem(x))
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))

    class DSCNN(nn.Module):
        def __init__(self):
            super().__init__()
            layers = [
                nn.ZeroPad2d((1, 1, 4, 5)),
                nn.Conv2d(1, 64, (10, 4), 2, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
            ]
            for _ in range(4):
                layers += [nn.Conv2d(64, 64, 3, 1, 1, groups=64, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
                layers += [nn.Conv2d(64, 64, 1, bias=False), nn.BatchNorm2d(64), nn.ReLU()]
            self.features = nn.Sequential(*layers)
            self.fc = nn.Linear(64, 12)

        def forward(self, x):
            return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(self.features(x), 1), 1))

    return {"resnet8": (ResNet8(), (3, 32, 32)), "dscnn": (DSCNN(), (1, 49, 10))}


def _randomize_bn(torch, model, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            m.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            m.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)


def main() -> None:
    torch = _require_torch()
    torch.manual_seed(0)
    OUT.mkdir(exist_ok=True)
    manifest = {"torch": torch.__version__, "files": {}}
    for name, (model, shape) in build_models(torch).items():
        _randomize_bn(torch, model, 1)
        model.eval()
        x = torch.randn(4, *shape, generator=torch.Generator().manual_seed(2))
        with torch.no_grad():
            logits = model(x).numpy()
        np.savez(OUT / f"{name}_io.npz", x=x.numpy(), logits=logits)
        example = (torch.zeros(1, *shape),)
        ts = OUT / f"{name}_torchscript.onnx"
        torch.onnx.export(model, example, str(ts), opset_version=17, dynamo=False, input_names=["input"],
                          output_names=["logits"], dynamic_axes={"input": {0: "N"}})  # fmt: skip
        dyn = OUT / f"{name}_dynamo.onnx"
        program = torch.onnx.export(model, example, dynamo=True, dynamic_shapes=({0: torch.export.Dim("N")},))
        program.save(str(dyn), external_data=True)
        manifest["files"][name] = sorted(p.name for p in OUT.glob(f"{name}_*"))
        print(f"{name}: wrote {', '.join(manifest['files'][name])}")
    (OUT / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


if __name__ == "__main__":
    main()
