"""The ONNX converters that fold into the layer before them: ``BatchNormalization``, constant affines
(``Mul``/``Div``/``Sub``/``Add`` by a per-channel constant) and activations (``Relu``, ``Clip``, ``Max``/``Min``
with a constant). Each takes the graph state, the node and the node's name for errors."""

from __future__ import annotations

import numpy as np

from fb_profile._onnx_checks import per_channel
from fb_profile._onnx_graph import Graph, Layer, Value
from fb_profile._onnx_layer_ops import residual_add

BN_EPS = 1e-5  # fb-search's BatchNorm epsilon; other epsilons are folded into the variance


def _fusable(g: Graph, v: Value, tensor: str, where: str, what: str) -> Layer:
    """The conv/linear layer that ``what`` (read from ``tensor``) can fold into."""
    layer = g.by_name.get(v.tensor)
    if layer is None or layer.lt.op not in ("conv2d", "depthwise_conv2d", "linear"):
        raise ValueError(f"{where}: {what} must follow a Conv or Gemm/MatMul")
    if layer.act != "none":
        raise ValueError(f"{where}: {what} after an activation cannot be folded into {layer.name}")
    if not g.single_reader(tensor):
        raise ValueError(f"{where}: the {layer.name} output it reads has other readers; cannot fold {what}")
    return layer


def batch_normalization(g: Graph, node, where: str) -> None:
    v = g.value(node.input[0], where)
    layer = _fusable(g, v, node.input[0], where, "BatchNormalization")
    if layer.bn is not None or layer.scale is not None or layer.act != "none":
        raise ValueError(f"{where}: a BatchNormalization must directly follow its conv")
    gamma, beta, mean, var = (g.consts[t].reshape(-1) for t in node.input[1:5])
    eps = float(g.attrs(node).get("epsilon", 1e-5))
    layer.bn = {"gamma": gamma, "beta": beta, "mean": mean - layer.weights["bias"], "var": var + eps - BN_EPS}
    layer.weights["bias"] = np.zeros_like(layer.weights["bias"])
    g.values[node.output[0]] = v


def _affine(g: Graph, node, where: str, scale=None, shift=None) -> None:
    """A per-channel ``y = x * scale + shift`` after a conv/linear, folded into it."""
    x, v = g.dynamic_value(node, where)
    layer = _fusable(g, v, x, where, node.op_type)
    ch = layer.lt.out_ch
    s = np.ones(ch) if scale is None else per_channel(scale, ch, v.layout, where)
    b = np.zeros(ch) if shift is None else per_channel(shift, ch, v.layout, where)
    layer.scale = s if layer.scale is None else layer.scale * s
    layer.shift = b if layer.shift is None else layer.shift * s + b
    g.values[node.output[0]] = v


def mul(g: Graph, node, where: str) -> None:
    c, _ = g.const_of(node)
    if c is None:
        raise ValueError(f"{where}: only multiplication by a constant is supported")
    _affine(g, node, where, scale=c)


def div(g: Graph, node, where: str) -> None:
    c, _ = g.const_of(node)
    if c is None or node.input[1] not in g.consts:
        raise ValueError(f"{where}: only division by a constant is supported")
    _affine(g, node, where, scale=1.0 / c)


def sub(g: Graph, node, where: str) -> None:
    if node.input[1] not in g.consts:
        raise ValueError(f"{where}: only subtraction of a constant is supported")
    _affine(g, node, where, shift=-g.consts[node.input[1]])


def add(g: Graph, node, where: str) -> None:
    """An Add of a constant folds into the layer before; an Add of two feature maps is a residual layer."""
    c, others = g.const_of(node)
    if c is not None:
        _affine(g, node, where, shift=c)
        return
    residual_add(g, node, where, others)


def _set_act(g: Graph, node, where: str, act: str) -> None:
    x, v = g.dynamic_value(node, where)
    layer = g.by_name.get(v.tensor)
    if layer is None or layer.lt.op == "maxpool" and act == "relu6":
        raise ValueError(f"{where}: an activation must follow a Conv, Gemm/MatMul, residual Add or pool")
    if not g.single_reader(x):
        raise ValueError(f"{where}: the {layer.name} output it reads has other readers; cannot fold it")
    if layer.act == "relu" and act == "relu6":
        layer.act = "relu6"
    elif layer.act == "none" or layer.act == act:
        layer.act = act
    else:
        raise ValueError(f"{where}: a second activation after {layer.name} ({layer.act}) is not supported")
    g.values[node.output[0]] = v


def relu(g: Graph, node, where: str) -> None:
    _set_act(g, node, where, "relu")


def clip(g: Graph, node, where: str) -> None:
    a = g.attrs(node)
    lo = a.get("min", float(g.consts[node.input[1]]) if len(node.input) > 1 and node.input[1] else None)
    hi = a.get("max", float(g.consts[node.input[2]]) if len(node.input) > 2 and node.input[2] else None)
    if lo == 0.0 and hi == 6.0:
        _set_act(g, node, where, "relu6")
    elif lo == 0.0 and (hi is None or hi == float("inf")):
        _set_act(g, node, where, "relu")
    else:
        raise ValueError(f"{where}: only Clip(0, 6) (ReLU6) and Clip(0, inf) (ReLU) are supported, got {lo, hi}")


def max_(g: Graph, node, where: str) -> None:
    c, _ = g.const_of(node)
    if c is None or np.any(c != 0):
        raise ValueError(f"{where}: only Max(x, 0) (ReLU) is supported")
    _set_act(g, node, where, "relu")


def min_(g: Graph, node, where: str) -> None:
    c, _ = g.const_of(node)
    if c is None or np.any(c != 6):
        raise ValueError(f"{where}: only Min(relu(x), 6) (ReLU6) is supported")
    _, v = g.dynamic_value(node, where)
    if g.by_name.get(v.tensor) is None or g.by_name[v.tensor].act != "relu":
        raise ValueError(f"{where}: only Min(relu(x), 6) (ReLU6) is supported")
    _set_act(g, node, where, "relu6")
