"""ONNX -> Free Bits topology (+ float weights): the one converter behind ``fb-search import-onnx`` and
``fb-profile --onnx``.

Reads what the PyTorch exporters (TorchScript and dynamo), tf2onnx (NHWC with boundary ``Transpose``) and
fb-search's own ``export-onnx`` write. Every tensor is tracked with its layout (``nchw`` / ``nhwc``), so
``Transpose`` nodes only change the layout; activations, constant affines (``Mul``/``Add``/``Sub``/``Div`` by a
per-channel constant), ``BatchNormalization`` and zero ``Pad`` fold into the layer they follow or precede.
Weights come out in fb-search's layout (HWIO kernels, ``(in, out)`` classifier with HWC-ordered rows). A conv
followed by an explicit ``BatchNormalization`` keeps the statistics (a bias before it moves into the mean); any
other conv is a conv with a bias and no BN. Anything else is one line naming the node, its op and what is
supported.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fb_schema import LayerType
from fb_schema.topologies import INPUT, Topology, TopologyLayer

BN_EPS = 1e-5  # fb-search's BatchNorm epsilon; other epsilons are folded into the variance
SUPPORTED = (
    "Conv, Gemm, MatMul, Add (residual or constant), Relu, Clip, Max/Min with a constant, BatchNormalization, "
    "Mul/Sub/Div by a constant, GlobalAveragePool, AveragePool (global), ReduceMean (over H, W), MaxPool, "
    "Pad (zero, spatial), Transpose (layout), Flatten, Reshape, Squeeze, Identity, Dropout, Softmax (last)"
)
PASS = {"Identity", "Dropout"}
FOLDABLE = ("Cast", "Concat", "Unsqueeze", "Squeeze", "Gather", "Reshape", "Identity", "Transpose", "Slice")


@dataclass
class _Value:
    """A graph tensor as the converter sees it: which topology tensor it is, in which layout, what is pending."""

    tensor: str
    layout: str  # nchw | nhwc | flat
    pad: tuple[int, int, int, int] = (0, 0, 0, 0)  # a pending zero Pad (top, left, bottom, right)


@dataclass
class _Layer:
    name: str
    lt: LayerType
    inputs: tuple[str, ...]
    act: str = "none"
    weights: dict[str, np.ndarray] = field(default_factory=dict)
    scale: np.ndarray | None = None  # a pending per-channel affine after the layer (conv/linear only)
    shift: np.ndarray | None = None
    bn: dict[str, np.ndarray] | None = None


@dataclass
class ImportedNetwork:
    """The result of :func:`import_onnx`: the topology, float weights per layer and ONNX node names per layer."""

    topology: Topology
    weights: dict[str, dict[str, Any]]  # layer -> {"kernel", "bias", "bn": {gamma, beta, mean, var}}
    nodes: dict[str, str]  # layer -> ONNX node name


def _onnx():
    try:
        import onnx
    except ImportError:
        raise ValueError("reading ONNX models needs the onnx package: pip install 'fb-profile[onnx]'") from None
    return onnx


def load_onnx(model: Any):
    """A ModelProto from a path (external ``.onnx.data`` weights included) or a ModelProto."""
    onnx = _onnx()
    if isinstance(model, str | os.PathLike):
        source = str(model)
        try:
            return onnx.load(str(Path(model))), source
        except Exception as exc:  # onnx raises DecodeError, OSError, ...
            raise ValueError(f"{source}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    return model, "<model>"


def import_onnx(model: Any, name: str | None = None, input_range: tuple[float, float] = (0.0, 1.0)) -> ImportedNetwork:
    """Convert an ONNX float classifier (a path or a ModelProto) to a topology and its float weights.

    Args:
        model: the ONNX model (``.onnx`` path; external data beside it is read) or ``onnx.ModelProto``.
        name: the topology's name (default: the graph's name or the file stem).
        input_range: the real range of the network's input (recorded in the topology; the 8-bit input
            quantizer covers it, signed symmetric if ``lo < 0``).

    Raises:
        ValueError: one line naming the node, its op and what is supported.
    """
    proto, source = load_onnx(model)
    conv = _Converter(proto, source)
    conv.run()
    if name is None:
        name = Path(source).stem if source != "<model>" else (proto.graph.name or "imported")
    return conv.result(_slug(name), input_range)


def onnx_layers(model: Any) -> list[tuple[str, LayerType]]:
    """(layer name, LayerType) of every layer of an ONNX model, as :func:`import_onnx` converts it (a model that
    does not end in a classifier is accepted here: latency needs only the layers)."""
    proto, source = load_onnx(model)
    conv = _Converter(proto, source)
    conv.run(classifier=False)
    if not conv.layers:
        raise ValueError(f"{source}: no Conv, Gemm/MatMul, Add or pooling node found")
    return [(layer.name, layer.lt) for layer in conv.layers]


def _slug(name: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return out or "imported"


class _Converter:
    def __init__(self, proto, source: str):
        onnx = _onnx()
        self.onnx, self.source = onnx, source
        self.graph = proto.graph
        self.consts: dict[str, np.ndarray] = {t.name: onnx.numpy_helper.to_array(t) for t in self.graph.initializer}
        self.values: dict[str, _Value] = {}
        self.layers: list[_Layer] = []
        self.by_name: dict[str, _Layer] = {}
        self.node_of: dict[str, str] = {}
        self.readers: dict[str, int] = {}
        for node in self.graph.node:
            for t in node.input:
                self.readers[t] = self.readers.get(t, 0) + 1
        for out in self.graph.output:
            self.readers[out.name] = self.readers.get(out.name, 0) + 1
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1:
            raise ValueError(f"{source}: expected one graph input, got {[i.name for i in inputs]}")
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
            for d in inputs[0].type.tensor_type.shape.dim
        ]
        if len(dims) != 4 or any(not isinstance(d, int) or d < 1 for d in dims[1:]):
            raise ValueError(
                f"{source}: input {inputs[0].name!r} has shape {dims}; expected a 4-D image input with static "
                "channel and spatial dimensions (only the batch may be dynamic)"
            )
        self.in_dims = tuple(dims[1:])
        self.input_name = inputs[0].name
        self.in_layout: str | None = None  # decided by the first layer or Transpose that reads the input
        self.values[self.input_name] = _Value(INPUT, "input")
        self.counts: dict[str, int] = {}
        self.shape_like: set[str] = set()

    # -- helpers ------------------------------------------------------------------------------------------------
    def where(self, node, i: int) -> str:
        return f"{self.source}: node {node.name or f'{node.op_type}_{i}'!r} ({node.op_type})"

    def attrs(self, node) -> dict[str, Any]:
        return {a.name: self.onnx.helper.get_attribute_value(a) for a in node.attribute}

    def shape(self, tensor: str) -> tuple[int, int, int]:
        """HWC of a topology tensor."""
        if tensor == INPUT:
            h, w, c = self._input_hwc()
            return h, w, c
        lt = self.by_name[tensor].lt
        return (*lt.out_hw, lt.out_ch)

    def _input_hwc(self) -> tuple[int, int, int]:
        a, b, c = self.in_dims
        return (b, c, a) if self.in_layout == "nchw" else (a, b, c)

    def value(self, name: str, where: str) -> _Value:
        if name not in self.values:
            raise ValueError(f"{where}: input {name!r} is neither the graph input nor a supported node's output")
        return self.values[name]

    def spatial(self, v: _Value, where: str, want: str = "nchw") -> None:
        """Check (or, for the graph input, decide) the layout of a tensor read by a spatial op."""
        if v.layout == "input":
            if self.in_layout is None:
                self.in_layout = want
            v.layout = self.in_layout
        if v.layout != want:
            raise ValueError(f"{where}: expects a {want.upper()} input, got a {v.layout.upper()} tensor")

    def add_layer(self, kind: str, lt: LayerType, inputs: tuple[str, ...], node_name: str) -> _Layer:
        index = self.counts.get(kind, 0)
        self.counts[kind] = index + 1
        layer = _Layer(f"{kind}{index}", lt, inputs)
        self.layers.append(layer)
        self.by_name[layer.name] = layer
        self.node_of[layer.name] = node_name
        return layer

    def const_of(self, node) -> tuple[np.ndarray | None, list[str]]:
        consts = [self.consts[t] for t in node.input if t in self.consts]
        others = [t for t in node.input if t and t not in self.consts]
        return (consts[0] if consts else None), others

    def single_reader(self, tensor_onnx: str) -> bool:
        return self.readers.get(tensor_onnx, 0) <= 1

    # -- the walk -----------------------------------------------------------------------------------------------
    def run(self, classifier: bool = True) -> None:
        for i, node in enumerate(self.graph.node):
            where = self.where(node, i)
            op = node.op_type
            handler = getattr(self, f"_op_{op}", None)
            if op == "Constant":
                value = self.attrs(node).get("value")
                if value is None:
                    raise ValueError(f"{where}: only tensor constants are supported")
                self.consts[node.output[0]] = self.onnx.numpy_helper.to_array(value)
                continue
            if node.input and all(t in self.consts for t in node.input if t):
                self._fold_constant(node, where)  # shape and padding arithmetic of the exporters
                continue
            dynamic = [t for t in node.input if t and t not in self.consts]
            if op == "Shape" or (op in FOLDABLE and dynamic and all(t in self.shape_like for t in dynamic)):
                self.shape_like.add(node.output[0])  # batch-size arithmetic of a dynamic-batch Reshape
                continue
            if op in PASS:
                self.values[node.output[0]] = self.value(node.input[0], where)
                continue
            if handler is None:
                raise ValueError(f"{where}: unsupported op; supported: {SUPPORTED}")
            handler(node, where)
        if not classifier:
            return
        outs = [o.name for o in self.graph.output]
        if len(outs) != 1 or outs[0] not in self.values:
            raise ValueError(f"{self.source}: the graph output must be the classifier's logits")
        last = self.values[outs[0]]
        if not self.layers or last.tensor != self.layers[-1].name or self.layers[-1].lt.op != "linear":
            raise ValueError(f"{self.source}: the graph must end in a linear classifier (Gemm/MatMul)")

    def _fold_constant(self, node, where: str) -> None:
        """Evaluate a node whose inputs are all constants (onnx's reference evaluator)."""
        from onnx.reference import ReferenceEvaluator

        try:
            outs = ReferenceEvaluator(node).run(None, {t: self.consts[t] for t in node.input if t})
        except Exception as exc:  # noqa: BLE001 - any evaluator failure is this node's problem
            raise ValueError(f"{where}: cannot evaluate this constant expression ({type(exc).__name__})") from None
        for name, value in zip(node.output, outs):
            self.consts[name] = np.asarray(value)

    def _op_Transpose(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        perm = tuple(self.attrs(node).get("perm", ()))
        if v.layout == "input":
            if perm != (0, 3, 1, 2):
                raise ValueError(f"{where}: the input may only be transposed NHWC -> NCHW (perm 0,3,1,2)")
            self.in_layout = "nhwc"
            v.layout = "nhwc"
        table = {("nhwc", (0, 3, 1, 2)): "nchw", ("nchw", (0, 2, 3, 1)): "nhwc"}
        if (v.layout, perm) not in table:
            raise ValueError(f"{where}: only NHWC <-> NCHW transposes are supported, got perm {list(perm)}")
        self.values[node.output[0]] = _Value(v.tensor, table[(v.layout, perm)], v.pad)

    def _op_Pad(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        a = self.attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = a.get("pads")
        if pads is None and len(node.input) > 1:
            pads = self.consts.get(node.input[1])
        value = float(self.consts[node.input[2]].reshape(-1)[0]) if len(node.input) > 2 and node.input[2] else 0.0
        if pads is None or mode != "constant" or value != 0.0:
            raise ValueError(f"{where}: only constant zero padding with constant pads is supported")
        pads = [int(p) for p in np.asarray(pads).reshape(-1)]
        if len(pads) != 8:
            raise ValueError(f"{where}: expected 4-D pads, got {pads}")
        if v.layout == "input":
            self.spatial(v, where, "nhwc" if self.in_layout == "nhwc" else "nchw")
        h_axis, w_axis = (2, 3) if v.layout == "nchw" else (1, 2)
        if any(pads[i] or pads[i + 4] for i in range(4) if i not in (h_axis, w_axis)) or min(pads) < 0:
            raise ValueError(f"{where}: only non-negative spatial padding is supported, got {pads}")
        pad = (pads[h_axis], pads[w_axis], pads[h_axis + 4], pads[w_axis + 4])
        self.values[node.output[0]] = _Value(v.tensor, v.layout, tuple(a + b for a, b in zip(v.pad, pad)))

    def _op_Conv(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        self.spatial(v, where)
        a = self.attrs(node)
        w = self.consts.get(node.input[1])
        if w is None:
            raise ValueError(f"{where}: the weight {node.input[1]!r} must be an initializer or a constant")
        if any(d != 1 for d in a.get("dilations", (1, 1))):
            raise ValueError(f"{where}: dilated convolutions are not supported (dilations {list(a['dilations'])})")
        h, w_, c = self.shape(v.tensor)
        out_ch, per_group, kh, kw = w.shape
        k = (int(kh), int(kw))
        s = tuple(int(x) for x in a.get("strides", (1, 1)))
        p = _pads(a, (h, w_), k, s, where)
        p = tuple(x + y for x, y in zip(p, v.pad))
        groups = int(a.get("group", 1))
        if groups == 1 and per_group == c:
            op = "conv2d"
        elif groups == c == out_ch and per_group == 1:
            op = "depthwise_conv2d"
        else:
            raise ValueError(f"{where}: group={groups} is neither 1 nor depthwise (group == in == out channels = {c})")
        lt = _make(where, op, h, w_, c, int(out_ch), k, s, p, groups)
        layer = self.add_layer("conv", lt, (v.tensor,), node.name)
        layer.weights["kernel"] = w.transpose(2, 3, 1, 0)  # OIHW -> HWIO (depthwise: kh, kw, 1, C)
        bias = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        layer.weights["bias"] = np.zeros(out_ch) if bias is None else bias.reshape(-1)
        self.values[node.output[0]] = _Value(layer.name, "nchw")

    def _op_BatchNormalization(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        layer = self._fusable(v, node.input[0], where, "BatchNormalization")
        if layer.bn is not None or layer.scale is not None or layer.act != "none":
            raise ValueError(f"{where}: a BatchNormalization must directly follow its conv")
        gamma, beta, mean, var = (self.consts[t].reshape(-1) for t in node.input[1:5])
        eps = float(self.attrs(node).get("epsilon", 1e-5))
        layer.bn = {"gamma": gamma, "beta": beta, "mean": mean - layer.weights["bias"], "var": var + eps - BN_EPS}
        layer.weights["bias"] = np.zeros_like(layer.weights["bias"])
        self.values[node.output[0]] = v

    def _fusable(self, v: _Value, tensor: str, where: str, what: str) -> _Layer:
        layer = self.by_name.get(v.tensor)
        if layer is None or layer.lt.op not in ("conv2d", "depthwise_conv2d", "linear"):
            raise ValueError(f"{where}: {what} must follow a Conv or Gemm/MatMul")
        if layer.act != "none":
            raise ValueError(f"{where}: {what} after an activation cannot be folded into {layer.name}")
        if not self.single_reader(tensor):
            raise ValueError(f"{where}: the {layer.name} output it reads has other readers; cannot fold {what}")
        return layer

    def _affine(self, node, where: str, scale=None, shift=None) -> None:
        """A per-channel ``y = x * scale + shift`` after a conv/linear, folded into it."""
        x = [t for t in node.input if t not in self.consts][0]
        v = self.value(x, where)
        layer = self._fusable(v, x, where, node.op_type)
        ch = layer.lt.out_ch
        s = np.ones(ch) if scale is None else _per_channel(scale, ch, v.layout, where)
        b = np.zeros(ch) if shift is None else _per_channel(shift, ch, v.layout, where)
        layer.scale = s if layer.scale is None else layer.scale * s
        layer.shift = b if layer.shift is None else layer.shift * s + b
        self.values[node.output[0]] = v

    def _op_Mul(self, node, where: str) -> None:
        c, _ = self.const_of(node)
        if c is None:
            raise ValueError(f"{where}: only multiplication by a constant is supported")
        self._affine(node, where, scale=c)

    def _op_Div(self, node, where: str) -> None:
        c, _ = self.const_of(node)
        if c is None or node.input[1] not in self.consts:
            raise ValueError(f"{where}: only division by a constant is supported")
        self._affine(node, where, scale=1.0 / c)

    def _op_Sub(self, node, where: str) -> None:
        if node.input[1] not in self.consts:
            raise ValueError(f"{where}: only subtraction of a constant is supported")
        self._affine(node, where, shift=-self.consts[node.input[1]])

    def _op_Add(self, node, where: str) -> None:
        c, others = self.const_of(node)
        if c is not None:
            self._affine(node, where, shift=c)
            return
        a, b = (self.value(t, where) for t in others)
        for x in (a, b):
            if x.layout == "input":
                self.spatial(x, where, self.in_layout or "nchw")
        if a.layout != b.layout or a.layout == "flat":
            raise ValueError(f"{where}: a residual Add needs two feature maps in one layout")
        h, w, ch = self.shape(a.tensor)
        if self.shape(b.tensor) != (h, w, ch):
            raise ValueError(f"{where}: a residual Add needs two inputs of the same shape")
        layer = self.add_layer("add", LayerType.add(h, w, ch), (a.tensor, b.tensor), node.name)
        self.values[node.output[0]] = _Value(layer.name, a.layout)

    def _set_act(self, node, where: str, act: str) -> None:
        x = [t for t in node.input if t and t not in self.consts][0]
        v = self.value(x, where)
        layer = self.by_name.get(v.tensor)
        if layer is None or layer.lt.op == "maxpool" and act == "relu6":
            raise ValueError(f"{where}: an activation must follow a Conv, Gemm/MatMul, residual Add or pool")
        if not self.single_reader(x):
            raise ValueError(f"{where}: the {layer.name} output it reads has other readers; cannot fold it")
        if layer.act == "relu" and act == "relu6":
            layer.act = "relu6"
        elif layer.act == "none" or layer.act == act:
            layer.act = act
        else:
            raise ValueError(f"{where}: a second activation after {layer.name} ({layer.act}) is not supported")
        self.values[node.output[0]] = v

    def _op_Relu(self, node, where: str) -> None:
        self._set_act(node, where, "relu")

    def _op_Clip(self, node, where: str) -> None:
        a = self.attrs(node)
        lo = a.get("min", float(self.consts[node.input[1]]) if len(node.input) > 1 and node.input[1] else None)
        hi = a.get("max", float(self.consts[node.input[2]]) if len(node.input) > 2 and node.input[2] else None)
        if lo == 0.0 and hi == 6.0:
            self._set_act(node, where, "relu6")
        elif lo == 0.0 and (hi is None or hi == float("inf")):
            self._set_act(node, where, "relu")
        else:
            raise ValueError(f"{where}: only Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU) are supported, got {lo, hi}")

    def _op_Max(self, node, where: str) -> None:
        c, _ = self.const_of(node)
        if c is None or np.any(c != 0):
            raise ValueError(f"{where}: only Max(x, 0) (ReLU) is supported")
        self._set_act(node, where, "relu")

    def _op_Min(self, node, where: str) -> None:
        c, _ = self.const_of(node)
        if c is None or np.any(c != 6):
            raise ValueError(f"{where}: only Min(relu(x), 6) (ReLU6) is supported")
        v = self.value([t for t in node.input if t not in self.consts][0], where)
        if self.by_name.get(v.tensor) is None or self.by_name[v.tensor].act != "relu":
            raise ValueError(f"{where}: only Min(relu(x), 6) (ReLU6) is supported")
        self._set_act(node, where, "relu6")

    def _global_pool(self, node, where: str, v: _Value, flat: bool) -> None:
        if v.layout not in ("nchw", "nhwc"):
            raise ValueError(f"{where}: expects a feature map, got a {v.layout} tensor")
        h, w, c = self.shape(v.tensor)
        layer = self.add_layer("pool", LayerType.global_avgpool(h, w, c), (v.tensor,), node.name)
        self.values[node.output[0]] = _Value(layer.name, "flat" if flat else v.layout)

    def _op_GlobalAveragePool(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        self.spatial(v, where)
        self._global_pool(node, where, v, False)

    def _op_AveragePool(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        self.spatial(v, where)
        a = self.attrs(node)
        h, w, _ = self.shape(v.tensor)
        if tuple(a.get("kernel_shape", ())) != (h, w) or any(a.get("pads", (0, 0, 0, 0))) or any(v.pad):
            raise ValueError(f"{where}: only global average pooling (kernel = the {h}x{w} map, no padding)")
        self._global_pool(node, where, v, False)

    def _op_ReduceMean(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        a = self.attrs(node)
        axes = a.get("axes")
        if axes is None and len(node.input) > 1:
            axes = self.consts[node.input[1]].reshape(-1).tolist()
        want = {"nchw": [2, 3], "nhwc": [1, 2]}.get(v.layout)
        if want is None or sorted(int(x) % 4 for x in axes or []) != want:
            raise ValueError(f"{where}: only a mean over H and W is supported, got axes {axes}")
        self._global_pool(node, where, v, not a.get("keepdims", 1))

    def _op_MaxPool(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        self.spatial(v, where)
        a = self.attrs(node)
        h, w, c = self.shape(v.tensor)
        k = tuple(int(x) for x in a["kernel_shape"])
        s = tuple(int(x) for x in a.get("strides", k))
        if any(d != 1 for d in a.get("dilations", (1, 1))) or a.get("ceil_mode", 0):
            raise ValueError(f"{where}: dilated or ceil_mode max pooling is not supported")
        p = tuple(x + y for x, y in zip(_pads(a, (h, w), k, s, where), v.pad))
        layer = self.add_layer("maxpool", _make(where, "maxpool", h, w, c, c, k, s, p, 1), (v.tensor,), node.name)
        self.values[node.output[0]] = _Value(layer.name, "nchw")

    def _flatten(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        if v.layout == "flat":
            self.values[node.output[0]] = v
            return
        if v.layout not in ("nchw", "nhwc"):
            raise ValueError(f"{where}: expects a feature map")
        self.values[node.output[0]] = _Value(v.tensor, "flat-" + v.layout)

    def _op_Flatten(self, node, where: str) -> None:
        if self.attrs(node).get("axis", 1) != 1:
            raise ValueError(f"{where}: only Flatten(axis=1) is supported")
        self._flatten(node, where)

    def _op_Reshape(self, node, where: str) -> None:
        if node.input[1] in self.shape_like:  # (batch, features) computed from Shape: a flatten
            self._flatten(node, where)
            return
        shape = self.consts.get(node.input[1])
        if shape is None or len(shape.reshape(-1)) != 2:
            raise ValueError(f"{where}: only a reshape to (N, features) with a constant shape is supported")
        self._flatten(node, where)

    def _op_Squeeze(self, node, where: str) -> None:
        v = self.value(node.input[0], where)
        h, w, _ = self.shape(v.tensor)
        if (h, w) != (1, 1):
            raise ValueError(f"{where}: only squeezing a 1x1 map is supported")
        self._flatten(node, where)

    def _op_Gemm(self, node, where: str) -> None:
        a = self.attrs(node)
        if a.get("transA", 0):
            raise ValueError(f"{where}: only Gemm with transA=0 is supported")
        w = self.consts.get(node.input[1])
        if w is None:
            raise ValueError(f"{where}: the weight {node.input[1]!r} must be an initializer")
        w = (w.T if a.get("transB", 0) else w) * float(a.get("alpha", 1.0))
        bias = self.consts.get(node.input[2]) if len(node.input) > 2 and node.input[2] else None
        if bias is not None:
            bias = bias * float(a.get("beta", 1.0))
        self._linear(node, where, w, bias)

    def _op_MatMul(self, node, where: str) -> None:
        w = self.consts.get(node.input[1])
        if w is None or w.ndim != 2:
            raise ValueError(f"{where}: the weight {node.input[1]!r} must be a 2-D initializer")
        self._linear(node, where, w, None)

    def _linear(self, node, where: str, w: np.ndarray, bias) -> None:
        v = self.value(node.input[0], where)
        if v.layout not in ("flat", "flat-nchw", "flat-nhwc"):
            raise ValueError(f"{where}: the classifier input must be flattened (Flatten/Reshape) first")
        h, wd, c = self.shape(v.tensor)
        n_in, n_out = w.shape
        if h * wd * c != n_in:
            raise ValueError(f"{where}: input has {h * wd * c} features, the weight expects {n_in}")
        if v.layout == "flat-nchw" and (h, wd) != (1, 1):  # ONNX flattens CHW; fb-search flattens HWC
            w = w.reshape(c, h, wd, n_out).transpose(1, 2, 0, 3).reshape(n_in, n_out)
        kind = "fc"
        layer = self.add_layer(kind, LayerType.linear(n_in, n_out), (v.tensor,), node.name)
        layer.weights = {"kernel": w, "bias": np.zeros(n_out) if bias is None else bias.reshape(-1)}
        self.values[node.output[0]] = _Value(layer.name, "flat")

    def _op_Softmax(self, node, where: str) -> None:
        if node.output[0] not in [o.name for o in self.graph.output]:
            raise ValueError(f"{where}: Softmax is supported only as the graph's last node")
        self.values[node.output[0]] = self.value(node.input[0], where)

    # -- result -------------------------------------------------------------------------------------------------
    def result(self, name: str, input_range) -> ImportedNetwork:
        fcs = [layer for layer in self.layers if layer.lt.op == "linear"]
        if len(fcs) == 1:
            rename = {fcs[0].name: "fc"}
            pools = [layer for layer in self.layers if layer.lt.op == "avgpool"]
            if len(pools) == 1:
                rename[pools[0].name] = "pool"
            for layer in self.layers:
                layer.inputs = tuple(rename.get(t, t) for t in layer.inputs)
                self.node_of[rename.get(layer.name, layer.name)] = self.node_of.pop(layer.name)
                layer.name = rename.get(layer.name, layer.name)
        topo_layers, weights = [], {}
        for layer in self.layers:
            configurable = layer.lt.configurable
            if configurable:
                weights[layer.name] = _finish(layer)
            has_bias = configurable and layer.bn is None
            topo_layers.append(TopologyLayer(layer.name, layer.lt, layer.inputs, layer.act, has_bias))
        h, w, c = self._input_hwc()
        try:
            topo = Topology(name, (h, w, c), topo_layers[-1].layer_type.out_ch, tuple(topo_layers),
                            {"source": Path(self.source).name}, self.in_layout or "nchw",
                            tuple(float(x) for x in input_range))  # fmt: skip
        except ValueError as exc:
            raise ValueError(f"{self.source}: {exc}") from None
        return ImportedNetwork(topo, weights, dict(self.node_of))


def _finish(layer: _Layer) -> dict[str, Any]:
    """Apply the pending affine: into the BN (gamma, beta) if there is one, else into kernel and bias."""
    kernel, bias = layer.weights["kernel"], layer.weights["bias"]
    s = np.ones(layer.lt.out_ch) if layer.scale is None else layer.scale
    b = np.zeros(layer.lt.out_ch) if layer.shift is None else layer.shift
    out: dict[str, Any] = {}
    if layer.bn is not None:
        bn = dict(layer.bn)
        bn["gamma"], bn["beta"] = bn["gamma"] * s, bn["beta"] * s + b
        out["bn"] = {k: np.asarray(v, np.float32) for k, v in bn.items()}
        out["kernel"] = kernel
    else:
        out["kernel"], bias = kernel * s, bias * s + b
        out["bias"] = bias
    return {k: (np.asarray(v, np.float32) if isinstance(v, np.ndarray) else v) for k, v in out.items()}


def _per_channel(c: np.ndarray, ch: int, layout: str, where: str) -> np.ndarray:
    """A constant broadcast against a layer output: a scalar, or one value per channel (channel axis: -3 in
    NCHW, -1 in NHWC and for flat outputs)."""
    c = np.asarray(c, np.float64)
    if c.size == 1:
        return np.full(ch, float(c.reshape(-1)[0]))
    axis = -3 if layout == "nchw" else -1
    if c.size == ch and c.ndim >= -axis and c.shape[axis] == ch:
        return c.reshape(-1)
    raise ValueError(f"{where}: a constant of shape {list(c.shape)} is neither a scalar nor per channel ({ch})")


def _pads(attrs: dict, hw: tuple[int, int], k: tuple, s: tuple, where: str) -> tuple[int, int, int, int]:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        t, l, b, r = (int(x) for x in attrs.get("pads", (0, 0, 0, 0)))  # x1_begin, x2_begin, x1_end, x2_end
        return (t, l, b, r)
    if auto == "VALID":
        return (0, 0, 0, 0)
    pads = []
    for size, kk, ss in zip(hw, k, s):
        total = max((-(-size // ss) - 1) * ss + kk - size, 0)
        small, big = total // 2, total - total // 2
        pads.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return (pads[0][0], pads[1][0], pads[0][1], pads[1][1])


def _make(where: str, *args) -> LayerType:
    try:
        return LayerType(*args)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
