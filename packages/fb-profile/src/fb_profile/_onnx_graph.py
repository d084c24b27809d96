"""The state of one ONNX -> topology conversion: the graph's constants, the tensors seen so far (with their
layouts) and the layers built from them.

The op converters (``_onnx_layer_ops``, ``_onnx_fold_ops``) read and extend this state; ``_onnx_walk`` drives
them node by node.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fb_schema import LayerType
from fb_schema.topologies import INPUT


def onnx_module():
    """The ``onnx`` package, or a one-line error saying how to install it."""
    try:
        import onnx
    except ImportError:
        raise ValueError("reading ONNX models needs the onnx package: pip install 'fb-profile[onnx]'") from None
    return onnx


@dataclass
class Value:
    """A graph tensor as the converter sees it: which topology tensor it is, in which layout, what is pending."""

    tensor: str
    layout: str  # nchw | nhwc | flat
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # a pending zero Pad (top, left, bottom, right)


@dataclass
class Layer:
    name: str
    lt: LayerType
    inputs: tuple[str, ...]
    act: str = "none"
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    scale: np.ndarray | None = None  # a pending per-channel affine after the layer (conv/linear only)
    shift: np.ndarray | None = None
    bn: dict[str, np.ndarray] | None = None


def _input_dims(inputs, source: str) -> tuple[int, int, int]:
    """The three static non-batch dimensions of the one image input."""
    if len(inputs) != 1:
        raise ValueError(f"{source}: expected one graph input, got {[i.name for i in inputs]}")
    dims = [
        d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in inputs[0].type.tensor_type.shape.dim
    ]
    if len(dims) != 4 or any(not isinstance(d, int) or d < 1 for d in dims[1:]):
        raise ValueError(
            f"{source}: input {inputs[0].name!r} has shape {dims}; expected a 4-D image input with static "
            "channel and spatial dimensions (only the batch may be dynamic)"
        )
    return dims[1], dims[2], dims[3]


class Graph:
    """An ONNX graph being converted: constants, tracked tensors, layers so far, and the lookups on them."""

    def __init__(self, proto, source: str):
        onnx = onnx_module()
        self.onnx, self.source = onnx, source
        self.graph = proto.graph
        self.consts: dict[str, np.ndarray] = {t.name: onnx.numpy_helper.to_array(t) for t in self.graph.initializer}
        self.values: dict[str, Value] = {}
        self.layers: list[Layer] = []
        self.by_name: dict[str, Layer] = {}
        self.node_of: dict[str, str] = {}
        self.readers: dict[str, int] = {}
        for node in self.graph.node:
            for t in node.input:
                self.readers[t] = self.readers.get(t, 0) + 1
        for out in self.graph.output:
            self.readers[out.name] = self.readers.get(out.name, 0) + 1
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        self.in_dims = _input_dims(inputs, source)
        self.input_name = inputs[0].name
        self.in_layout: str | None = None  # decided by the first layer or Transpose that reads the input
        self.values[self.input_name] = Value(INPUT, "input")
        self.counts: dict[str, int] = {}
        self.shape_like: set[str] = set()

    def where(self, node, i: int) -> str:
        return f"{self.source}: node {node.name or f'{node.op_type}_{i}'!r} ({node.op_type})"

    def attrs(self, node) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def shape(self, tensor: str) -> tuple[int, int, int]:
        """HWC of a topology tensor."""
        if tensor == INPUT:
            h, w, c = self.input_hwc()
            return h, w, c
        lt = self.by_name[tensor].lt
        return (*lt.out_hw, lt.out_ch)

    def input_hwc(self) -> tuple[int, int, int]:
        a, b, c = self.in_dims
        return (b, c, a) if self.in_layout == "nchw" else (a, b, c)

    def value(self, name: str, where: str) -> Value:
        if name not in self.values:
            raise ValueError(f"{where}: input {name!r} is neither the graph input nor a supported node's output")
        return self.values[name]

    def dynamic_value(self, node, where: str) -> tuple[str, Value]:
        """The first input of ``node`` that is not a constant, and its value."""
        x = [t for t in node.input if t and t not in self.consts][0]
        return x, self.value(x, where)

    def spatial(self, v: Value, where: str, want: str = "nchw") -> None:
        """Check (or, for the graph input, decide) the layout of a tensor read by a spatial op."""
        if v.layout == "input":
            if self.in_layout is None:
                self.in_layout = want
            v.layout = self.in_layout
        if v.layout != want:
            raise ValueError(f"{where}: expects a {want.upper()} input, got a {v.layout.upper()} tensor")

    def add_layer(self, kind: str, lt: LayerType, inputs: tuple[str, ...], node_name: str) -> Layer:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        layer = Layer(f"{kind}{index}", lt, inputs)
        self.layers.append(layer)
        self.by_name[layer.name] = layer
        self.node_of[layer.name] = node_name
        return layer

    def const_of(self, node) -> tuple[np.ndarray | None, list[str]]:
        consts = [self.consts[t] for t in node.input if t in self.consts]
        others = [t for t in node.input if t and t not in self.consts]
        return (consts[0] if consts else None), others

    def optional_const(self, node, index: int) -> np.ndarray | None:
        """The constant at input ``index`` of ``node``, or None where the input is absent or empty."""
        return self.consts.get(node.input[index]) if len(node.input) > index and node.input[index] else None

    def single_reader(self, tensor_onnx: str) -> bool:
        return self.readers.get(tensor_onnx, 0) <= 1
