"""The MLPerf Tiny ResNet-8 (CIFAR-10, 32x32x3, 10 classes) and DS-CNN (keyword spotting, 49x10x1 MFCCs,
12 classes) as Free Bits topologies, written with the public fb_schema API only.

Run ``python examples/topologies.py`` to (re)write ``examples/resnet8.topology.json`` and
``examples/dscnn.topology.json``. Layer names follow the ONNX import's naming (``conv<i>``, ``add<i>``, ...),
so a topology imported from an ONNX export of the same network has the same layer types.
Reference: Banbury et al., "MLPerf Tiny Benchmark", NeurIPS 2021 (the ``training/`` models of mlcommons/tiny).
"""

from __future__ import annotations

import sys
from pathlib import Path

from fb_schema import LayerType
from fb_schema.topologies import INPUT, Topology, TopologyLayer, save_topology


class _Net:
    """Appends layers, tracking each tensor's HWC shape."""

    def __init__(self, shape: tuple[int, int, int]):
        self.layers: list[TopologyLayer] = []
        self.shapes = {INPUT: shape}

    def push(self, name: str, lt: LayerType, inputs: tuple[str, ...], act: str, bias: bool = True) -> str:
        self.layers.append(TopologyLayer(name, lt, inputs, act, bias and lt.configurable))
        self.shapes[name] = (*lt.out_hw, lt.out_ch)
        return name

    def conv(self, name, src, out_ch, kernel, stride=1, act="relu", padding=None):
        h, w, c = self.shapes[src]
        return self.push(name, LayerType.conv2d(h, w, c, out_ch, kernel, stride, padding), (src,), act)

    def depthwise(self, name, src, kernel=3, stride=1, act="relu"):
        h, w, c = self.shapes[src]
        return self.push(name, LayerType.depthwise(h, w, c, kernel, stride), (src,), act)

    def add(self, name, a, b, act="relu"):
        h, w, c = self.shapes[a]
        return self.push(name, LayerType.add(h, w, c), (a, b), act)

    def head(self, src, classes):
        h, w, c = self.shapes[src]
        pool = self.push("pool", LayerType.global_avgpool(h, w, c), (src,), "none")
        return self.push("fc", LayerType.linear(c, classes), (pool,), "none")


def resnet8(input_range: tuple[float, float] = (-3.0, 3.0)) -> Topology:
    """ResNet-8: stem conv, three residual stacks (16, 32, 64 channels; 1x1 strided shortcut convs), ReLU
    after every add, global average pool, classifier. Convs carry a bias (BatchNorm folded by the exporter)."""
    n = _Net((32, 32, 3))
    x = n.conv("conv0", INPUT, 16, 3)
    y = n.conv("conv1", x, 16, 3)
    y = n.conv("conv2", y, 16, 3, act="none")
    x = n.add("add0", x, y)
    for i, ch in ((1, 32), (2, 64)):
        y = n.conv(f"conv{3 * i}", x, ch, 3, 2)
        y = n.conv(f"conv{3 * i + 1}", y, ch, 3, act="none")
        s = n.conv(f"conv{3 * i + 2}", x, ch, 1, 2, act="none")
        x = n.add(f"add{i}", s, y)
    n.head(x, 10)
    return Topology("resnet8", (32, 32, 3), 10, tuple(n.layers), input_layout="nchw", input_range=input_range)


def dscnn(input_range: tuple[float, float] = (-128.0, 128.0)) -> Topology:
    """DS-CNN (small): a 10x4 stride-2 stem conv with TensorFlow "same" padding (top 4, bottom 5), four
    depthwise-separable blocks of 64 channels, global average pool, classifier."""
    n = _Net((49, 10, 1))
    x = n.conv("conv0", INPUT, 64, (10, 4), 2, padding=(4, 1, 5, 1))
    for i in range(4):
        x = n.depthwise(f"conv{2 * i + 1}", x)
        x = n.conv(f"conv{2 * i + 2}", x, 64, 1)
    n.head(x, 12)
    return Topology("dscnn", (49, 10, 1), 12, tuple(n.layers), input_layout="nchw", input_range=input_range)


def main(out_dir: str | Path = Path(__file__).parent) -> None:
    for net in (resnet8(), dscnn()):
        path = Path(out_dir) / f"{net.name}.topology.json"
        save_topology(net, path)
        print(f"wrote {path}: {len(net.layers)} layers, {len(net.layer_types())} layer types")


if __name__ == "__main__":
    main(*sys.argv[1:])
