"""Layer types of an ONNX model (NCHW): Conv (depthwise via ``group``), Gemm/MatMul, residual Add, pooling.

Shapes come from ONNX shape inference; a symbolic batch dimension is read as 1, while H, W and C must be static.
Quantisation and activation ops between layers (Relu, Clip, Mul/Div by constants, BatchNormalization, Flatten,
...) carry no latency of their own in a DORY deployment (they are fused into the layer's requantisation), so they
are passed over; any other op is named in an error.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fb_schema import LayerType

PASS_THROUGH = {
    "Relu",
    "Clip",
    "BatchNormalization",
    "Identity",
    "Dropout",
    "Flatten",
    "Reshape",
    "Squeeze",
    "Unsqueeze",
    "Mul",
    "Div",
    "Floor",
    "Round",
    "Cast",
    "QuantizeLinear",
    "DequantizeLinear",
    "Constant",
}


def _import_onnx():
    try:
        import onnx
    except ImportError:
        raise ValueError("reading ONNX models needs the onnx package: pip install 'fb-profile[onnx]'") from None
    return onnx


def onnx_layers(model: Any) -> list[tuple[str, LayerType]]:
    """(node name, LayerType) of every latency-relevant node of an ONNX model (a path or a ModelProto)."""
    onnx = _import_onnx()
    source = "<model>"
    if isinstance(model, str | os.PathLike):
        source = str(model)
        try:
            model = onnx.load(str(Path(model)))
        except Exception as exc:  # onnx raises DecodeError, OSError, ...
            raise ValueError(f"{source}: not a readable ONNX model ({type(exc).__name__}: {exc})") from None
    try:
        model = onnx.shape_inference.infer_shapes(model)
    except Exception as exc:
        raise ValueError(f"{source}: ONNX shape inference failed ({exc})") from None
    graph = model.graph
    inits = {t.name: tuple(t.dims) for t in graph.initializer}
    for node in graph.node:  # Constant nodes act as initializers
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    inits[node.output[0]] = tuple(attr.t.dims)
    shapes: dict[str, list[int | str]] = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        dims = vi.type.tensor_type.shape.dim
        shapes[vi.name] = [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
    out = []
    for i, node in enumerate(graph.node):
        name = node.name or f"{node.op_type}_{i}"
        where = f"{source}: node {name!r} ({node.op_type})"
        op = node.op_type
        if op in PASS_THROUGH or (op == "Add" and any(x in inits for x in node.input)):
            continue  # bias / constant adds are part of the previous layer
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if op == "Conv":
            out.append((name, _conv(node, attrs, shapes, inits, where)))
        elif op in ("Gemm", "MatMul"):
            out.append((name, _linear(node, attrs, shapes, inits, where)))
        elif op == "Add":
            c, h, w = _chw(node.input[0], shapes, where)
            if _chw(node.input[1], shapes, where) != (c, h, w):
                raise ValueError(f"{where}: a residual Add needs two inputs of the same shape")
            out.append((name, LayerType.add(h, w, c)))
        elif op == "GlobalAveragePool":
            c, h, w = _chw(node.input[0], shapes, where)
            out.append((name, LayerType.global_avgpool(h, w, c)))
        elif op == "AveragePool":
            c, h, w = _chw(node.input[0], shapes, where)
            k = tuple(attrs["kernel_shape"])
            s = tuple(attrs.get("strides", k))
            p = _pads(attrs, (h, w), k, s, where)
            out.append((name, _make(where, "avgpool", h, w, c, c, k, s, p, 1)))
        else:
            raise ValueError(
                f"{where}: unsupported op; supported: Conv, Gemm, MatMul, Add, AveragePool, GlobalAveragePool"
                f" and pass-through {', '.join(sorted(PASS_THROUGH))}"
            )
    if not out:
        raise ValueError(f"{source}: no Conv, Gemm/MatMul, Add or pooling node found")
    return out


def _chw(tensor: str, shapes: dict[str, list], where: str) -> tuple[int, int, int]:
    shape = shapes.get(tensor)
    if shape is None:
        raise ValueError(f"{where}: the shape of input {tensor!r} is unknown; expected a static NCHW shape")
    if len(shape) != 4:
        raise ValueError(f"{where}: input {tensor!r} has shape {shape}; expected 4-D NCHW")
    for axis, dim in zip("CHW", shape[1:]):
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"{where}: input {tensor!r} has a dynamic {axis} dimension ({dim!r}); expected static")
    return shape[1], shape[2], shape[3]


def _pads(attrs: dict, hw: tuple[int, int], k: tuple, s: tuple, where: str) -> tuple[int, int, int, int]:
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        t, l, b, r = tuple(attrs.get("pads", (0, 0, 0, 0)))  # ONNX: x1_begin, x2_begin, x1_end, x2_end
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


def _conv(node, attrs: dict, shapes, inits, where: str) -> LayerType:
    c, h, w = _chw(node.input[0], shapes, where)
    if node.input[1] not in inits:
        raise ValueError(f"{where}: the weight {node.input[1]!r} must be an initializer")
    out_ch, in_per_group, kh, kw = inits[node.input[1]]
    if any(d != 1 for d in attrs.get("dilations", (1, 1))):
        raise ValueError(f"{where}: dilated convolutions are not supported (dilations {attrs['dilations']})")
    groups = int(attrs.get("group", 1))
    k = (int(kh), int(kw))
    s = tuple(int(v) for v in attrs.get("strides", (1, 1)))
    p = _pads(attrs, (h, w), k, s, where)
    if groups == 1:
        return _make(where, "conv2d", h, w, c, int(out_ch), k, s, p, 1)
    if groups == c == out_ch and in_per_group == 1:
        return _make(where, "depthwise_conv2d", h, w, c, c, k, s, p, groups)
    raise ValueError(f"{where}: group={groups} is neither 1 nor depthwise (group == in == out channels = {c})")


def _linear(node, attrs: dict, shapes, inits, where: str) -> LayerType:
    if node.input[1] not in inits:
        raise ValueError(f"{where}: the weight {node.input[1]!r} must be an initializer")
    shape = inits[node.input[1]]
    if len(shape) != 2:
        raise ValueError(f"{where}: weight of shape {list(shape)}; expected 2-D")
    if node.op_type == "Gemm" and attrs.get("transA", 0):
        raise ValueError(f"{where}: transA=1 is not supported")
    n_in, n_out = (shape[1], shape[0]) if (node.op_type == "Gemm" and attrs.get("transB", 0)) else shape
    x = shapes.get(node.input[0])
    if x is not None:
        feats = x[1:]
        if any(not isinstance(d, int) for d in feats):
            raise ValueError(f"{where}: input {node.input[0]!r} has a dynamic dimension {x}; expected static")
        size = 1
        for d in feats:
            size *= d
        if size != n_in:
            raise ValueError(f"{where}: input has {size} features, the weight expects {n_in}")
    return LayerType.linear(int(n_in), int(n_out))
