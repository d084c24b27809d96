"""The ONNX converters that make a topology layer (Conv, Gemm/MatMul, residual Add, pooling) or change only how
a tensor is laid out (Transpose, Pad, Flatten/Reshape/Squeeze, Softmax). Each takes the graph state, the node
and the node's name for errors."""

from __future__ import annotations

import numpy as np

from fb_profile._onnx_checks import make_layer_type, pad_list, pads
from fb_profile._onnx_graph import Graph, Value
from fb_schema import LayerType

# perm of a Transpose, by the layout it reads -> the layout it writes
_TRANSPOSES = {("nhwc", (0, 3, 1, 2)): "nchw", ("nchw", (0, 2, 3, 1)): "nhwc"}


def transpose(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    perm = tuple(g.attrs(node).get("perm", ()))
    if v.layout == "input":
        if perm != (0, 3, 1, 2):
            raise ValueError(f"{where}: the input may only be transposed NHWC -> NCHW (perm 0,3,1,2)")
        g.in_layout = "nhwc"
        v.layout = "nhwc"
    if (v.layout, perm) not in _TRANSPOSES:
        raise ValueError(f"{where}: only NHWC <-> NCHW transposes are supported, got perm {list(perm)}")
    g.values[node.output[0]] = Value(v.tensor, _TRANSPOSES[(v.layout, perm)], v.pad)


def pad(g: Graph, node, where: str) -> None:
    """A zero ``Pad``: kept pending on the tensor, to be folded into the conv or pool that reads it."""
    v = g.value(node.input[0], where)
    p = pad_list(g.attrs(node), node, g.consts, where)
    if v.layout == "input":
        g.spatial(v, where, "nhwc" if g.in_layout == "nhwc" else "nchw")
    h_axis, w_axis = (2, 3) if v.layout == "nchw" else (1, 2)
    if any(p[i] or p[i + 4] for i in range(4) if i not in (h_axis, w_axis)) or min(p) < 0:
        raise ValueError(f"{where}: only non-negative spatial padding is supported, got {p}")
    spatial = (p[h_axis], p[w_axis], p[h_axis + 4], p[w_axis + 4])
    g.values[node.output[0]] = Value(v.tensor, v.layout, tuple(a + b for a, b in zip(v.pad, spatial)))


def _conv_op(groups: int, per_group: int, c: int, out_ch: int, where: str) -> str:
    if groups == 1 and per_group == c:
        return "conv2d"
    if groups == c == out_ch and per_group == 1:
        return "depthwise_conv2d"
    raise ValueError(f"{where}: group={groups} is neither 1 nor depthwise (group == in == out channels = {c})")


def conv(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    g.spatial(v, where)
    a = g.attrs(node)
    w = g.consts.get(node.input[1])
    if w is None:
        raise ValueError(f"{where}: the weight {node.input[1]!r} must be an initializer or a constant")
    if any(d != 1 for d in a.get("dilations", (1, 1))):
        raise ValueError(f"{where}: dilated convolutions are not supported (dilations {list(a['dilations'])})")
    h, w_, c = g.shape(v.tensor)
    out_ch, per_group, kh, kw = w.shape
    k = (int(kh), int(kw))
    s = tuple(int(x) for x in a.get("strides", (1, 1)))
    p = tuple(x + y for x, y in zip(pads(a, (h, w_), k, s, where), v.pad))
    groups = int(a.get("group", 1))
    op = _conv_op(groups, per_group, c, out_ch, where)
    lt = make_layer_type(where, op, h, w_, c, int(out_ch), k, s, p, groups)
    layer = g.add_layer("conv", lt, (v.tensor,), node.name)
    layer.weights["kernel"] = w.transpose(2, 3, 1, 0)  # OIHW -> HWIO (depthwise: kh, kw, 1, C)
    bias = g.optional_const(node, 2)
    layer.weights["bias"] = np.zeros(out_ch) if bias is None else bias.reshape(-1)
    g.values[node.output[0]] = Value(layer.name, "nchw")


def residual_add(g: Graph, node, where: str, others: list[str]) -> None:
    """An Add of two feature maps: a residual ``add`` layer."""
    a, b = (g.value(t, where) for t in others)
    for x in (a, b):
        if x.layout == "input":
            g.spatial(x, where, g.in_layout or "nchw")
    if a.layout != b.layout or a.layout == "flat":
        raise ValueError(f"{where}: a residual Add needs two feature maps in one layout")
    h, w, ch = g.shape(a.tensor)
    if g.shape(b.tensor) != (h, w, ch):
        raise ValueError(f"{where}: a residual Add needs two inputs of the same shape")
    layer = g.add_layer("add", LayerType.add(h, w, ch), (a.tensor, b.tensor), node.name)
    g.values[node.output[0]] = Value(layer.name, a.layout)


def _global_pool(g: Graph, node, where: str, v: Value, flat: bool) -> None:
    if v.layout not in ("nchw", "nhwc"):
        raise ValueError(f"{where}: expects a feature map, got a {v.layout} tensor")
    h, w, c = g.shape(v.tensor)
    layer = g.add_layer("pool", LayerType.global_avgpool(h, w, c), (v.tensor,), node.name)
    g.values[node.output[0]] = Value(layer.name, "flat" if flat else v.layout)


def global_average_pool(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    g.spatial(v, where)
    _global_pool(g, node, where, v, False)


def average_pool(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    g.spatial(v, where)
    a = g.attrs(node)
    h, w, _ = g.shape(v.tensor)
    if tuple(a.get("kernel_shape", ())) != (h, w) or any(a.get("pads", (0, 0, 0, 0))) or any(v.pad):
        raise ValueError(f"{where}: only global average pooling (kernel = the {h}x{w} map, no padding)")
    _global_pool(g, node, where, v, False)


def reduce_mean(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    a = g.attrs(node)
    axes = a.get("axes")
    if axes is None and len(node.input) > 1:
        axes = g.consts[node.input[1]].reshape(-1).tolist()
    want = {"nchw": [2, 3], "nhwc": [1, 2]}.get(v.layout)
    if want is None or sorted(int(x) % 4 for x in axes or []) != want:
        raise ValueError(f"{where}: only a mean over H and W is supported, got axes {axes}")
    _global_pool(g, node, where, v, not a.get("keepdims", 1))


def max_pool(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    g.spatial(v, where)
    a = g.attrs(node)
    h, w, c = g.shape(v.tensor)
    k = tuple(int(x) for x in a["kernel_shape"])
    s = tuple(int(x) for x in a.get("strides", k))
    if any(d != 1 for d in a.get("dilations", (1, 1))) or a.get("ceil_mode", 0):
        raise ValueError(f"{where}: dilated or ceil_mode max pooling is not supported")
    p = tuple(x + y for x, y in zip(pads(a, (h, w), k, s, where), v.pad))
    lt = make_layer_type(where, "maxpool", h, w, c, c, k, s, p, 1)
    layer = g.add_layer("maxpool", lt, (v.tensor,), node.name)
    g.values[node.output[0]] = Value(layer.name, "nchw")


def _flatten(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    if v.layout == "flat":
        g.values[node.output[0]] = v
        return
    if v.layout not in ("nchw", "nhwc"):
        raise ValueError(f"{where}: expects a feature map")
    g.values[node.output[0]] = Value(v.tensor, "flat-" + v.layout)


def flatten(g: Graph, node, where: str) -> None:
    if g.attrs(node).get("axis", 1) != 1:
        raise ValueError(f"{where}: only Flatten(axis=1) is supported")
    _flatten(g, node, where)


def reshape(g: Graph, node, where: str) -> None:
    if node.input[1] in g.shape_like:  # (batch, features) computed from Shape: a flatten
        _flatten(g, node, where)
        return
    shape = g.consts.get(node.input[1])
    if shape is None or len(shape.reshape(-1)) != 2:
        raise ValueError(f"{where}: only a reshape to (N, features) with a constant shape is supported")
    _flatten(g, node, where)


def squeeze(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    h, w, _ = g.shape(v.tensor)
    if (h, w) != (1, 1):
        raise ValueError(f"{where}: only squeezing a 1x1 map is supported")
    _flatten(g, node, where)


def gemm(g: Graph, node, where: str) -> None:
    a = g.attrs(node)
    if a.get("transA", 0):
        raise ValueError(f"{where}: only Gemm with transA=0 is supported")
    w = g.consts.get(node.input[1])
    if w is None:
        raise ValueError(f"{where}: the weight {node.input[1]!r} must be an initializer")
    w = (w.T if a.get("transB", 0) else w) * float(a.get("alpha", 1.0))
    bias = g.optional_const(node, 2)
    if bias is not None:
        bias = bias * float(a.get("beta", 1.0))
    _linear(g, node, where, w, bias)


def matmul(g: Graph, node, where: str) -> None:
    w = g.consts.get(node.input[1])
    if w is None or w.ndim != 2:
        raise ValueError(f"{where}: the weight {node.input[1]!r} must be a 2-D initializer")
    _linear(g, node, where, w, None)


def _linear(g: Graph, node, where: str, w: np.ndarray, bias) -> None:
    v = g.value(node.input[0], where)
    if v.layout not in ("flat", "flat-nchw", "flat-nhwc"):
        raise ValueError(f"{where}: the classifier input must be flattened (Flatten/Reshape) first")
    h, wd, c = g.shape(v.tensor)
    n_in, n_out = w.shape
    if h * wd * c != n_in:
        raise ValueError(f"{where}: input has {h * wd * c} features, the weight expects {n_in}")
    if v.layout == "flat-nchw" and (h, wd) != (1, 1):  # ONNX flattens CHW; fb-search flattens HWC
        w = w.reshape(c, h, wd, n_out).transpose(1, 2, 0, 3).reshape(n_in, n_out)
    layer = g.add_layer("fc", LayerType.linear(n_in, n_out), (v.tensor,), node.name)
    layer.weights = {"kernel": w, "bias": np.zeros(n_out) if bias is None else bias.reshape(-1)}
    g.values[node.output[0]] = Value(layer.name, "flat")


def softmax(g: Graph, node, where: str) -> None:
    if node.output[0] not in [o.name for o in g.graph.output]:
        raise ValueError(f"{where}: Softmax is supported only as the graph's last node")
    g.values[node.output[0]] = g.value(node.input[0], where)
