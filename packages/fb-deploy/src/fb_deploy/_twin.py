"""ONNX Runtime twin of a DORY model: the same integer arithmetic as standard ONNX that ORT runs exactly.

A DORY model does not run as is (custom attributes; the residual add's requantization lives in attributes;
float32 is exact only below 2^24). The twin keeps convolutions in float32 only where every partial sum provably
stays below 2^24 (``fan_in * max|x| * max|w|``), splitting a convolution over input channels otherwise, then
casts to int64 and requantizes with exact integer ops: ``floor(a / 2^d) = (a - Mod(a, 2^d)) / 2^d``.
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fb_deploy._dory_add import AddReading, add_reading
from fb_deploy._dory_graph import DoryGraph, DoryLayer, attrs
from fb_deploy._integer_network import grid

TWIN_OPSET = 13
EXACT = 2**24


def _max_abs(bits: int, signed: bool) -> int:
    lo, hi = grid(min(bits, 32), signed)
    return max(-lo, hi)


class _Twin:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def name(self) -> str:
        self.n += 1
        return f"t{self.n}"

    def op(self, op: str, inputs: list[str], **kw) -> str:
        out = self.name()
        self.nodes.append(helper.make_node(op, inputs, [out], **kw))
        return out

    def const(self, value, dtype) -> str:
        name = self.name()
        self.inits.append(numpy_helper.from_array(np.asarray(value).astype(dtype), name))
        return name

    def to_int(self, x: str) -> str:
        return self.op("Cast", [x], to=TensorProto.INT64)

    def to_float(self, x: str) -> str:
        return self.op("Cast", [x], to=TensorProto.FLOAT)

    def floordiv(self, x: str, d: int) -> str:
        dd = self.const(d, np.int64)
        rem = self.op("Mod", [x, dd], fmod=0)  # integer Mod takes the divisor's sign: floor semantics
        return self.op("Div", [self.op("Sub", [x, rem]), dd])

    def clip(self, x: str, lo: int, hi: int) -> str:
        return self.op("Clip", [x, self.const(lo, np.int64), self.const(hi, np.int64)])

    def requant(self, x: str, mul, add, d: int, lo: int, hi: int) -> str:
        y = self.op("Mul", [x, self.const(mul, np.int64)])
        y = self.op("Add", [y, self.const(add, np.int64)])
        return self.clip(self.floordiv(y, d), lo, hi)


def build_twin(graph: DoryGraph, exact: int = EXACT) -> onnx.ModelProto:
    """Standard-ONNX (opset 13) model computing exactly what DORY computes; one int64 output per DORY layer.

    ``exact`` bounds every float32 partial sum (2^24: float32 represents all integers below it).
    """
    t = _Twin()
    fl = {graph.input_name: graph.input_name}  # DORY tensor -> float twin tensor
    it: dict[str, str] = {}  # DORY tensor -> int64 twin tensor

    def as_int(name: str) -> str:
        if name not in it:
            it[name] = t.to_int(fl[name])
        return it[name]

    def as_float(name: str) -> str:
        if name not in fl:
            fl[name] = t.to_float(it[name])
        return fl[name]

    outputs = []
    for layer in graph.layers:
        if layer.kind == "add":
            out = _add(t, layer, add_reading(graph, layer), as_int)
        else:
            out = _layer(t, layer, as_int, as_float, exact)
        it[layer.output] = out
        outputs.append((t.op("Identity", [out]), 2 if layer.kind == "fc" else 4))
    model_in = graph.model.graph.input[0]
    c, h, w = graph.shapes[graph.input_name]
    g = helper.make_graph(
        t.nodes,
        "twin",
        [helper.make_tensor_value_info(model_in.name, TensorProto.FLOAT, [None, c, h, w])],
        [helper.make_tensor_value_info(o, TensorProto.INT64, [None] * rank) for o, rank in outputs],
        t.inits,
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", TWIN_OPSET)], producer_name="fb-deploy")
    model.ir_version = 8
    return model


def _add(t: _Twin, layer: DoryLayer, reading: AddReading | str, as_int) -> str:
    """DORY's add kernel: each input, read at the precision DORY assigns it, requantized by the attributes DORY
    applies to it and clipped to 8 bits of the read signedness; then summed and requantized (``_dory_add``)."""
    a = attrs(layer.node)
    if isinstance(reading, str):  # an order DORY's rules do not determine: the graph's own meaning
        precs = tuple(zip(layer.in_bits, layer.in_signed))
        reading = AddReading(tuple(layer.inputs), precs, precs, ("in1", "in2"))
    parts = []
    for x, stored, read, p in zip(reading.tensors, reading.stored, reading.read, reading.params):
        v = as_int(x)
        if stored != read and stored[0] == read[0]:  # the same bytes at the other signedness
            lo_read = grid(*read)[0]
            v = t.op(
                "Add",
                [
                    t.op("Mod", [t.op("Sub", [v, t.const(lo_read, np.int64)]), t.const(2 ** read[0], np.int64)]),
                    t.const(lo_read, np.int64),
                ],
            )
        parts.append(t.requant(v, a[f"{p}_mul"], a[f"{p}_add"], 2 ** a[f"{p}_shift"], *grid(8, read[1])))
    lo, hi = grid(layer.out_bits, layer.out_signed)
    return t.requant(t.op("Add", parts), a["out_mul"], a["out_add"], 2 ** a["out_shift"], lo, hi)


def _layer(t: _Twin, layer: DoryLayer, as_int, as_float, exact: int) -> str:
    a = attrs(layer.node)
    lo, hi = grid(layer.out_bits, layer.out_signed) if layer.out_bits <= 32 else (-(2**63), 2**63 - 1)
    x_bound = _max_abs(layer.in_bits[0], layer.in_signed[0])
    if layer.kind == "maxpool":
        pool_attrs = {k: a[k] for k in ("kernel_shape", "strides", "pads") if k in a}
        y = t.op("MaxPool", [as_float(layer.inputs[0])], **pool_attrs)
        return t.to_int(y)
    if layer.kind == "pool":
        c, h, w = layer.in_shape
        kernel = [h, w] if layer.node.op_type == "GlobalAveragePool" else list(a["kernel_shape"])
        strides = kernel if layer.node.op_type == "GlobalAveragePool" else list(a["strides"])
        pads = list(a.get("pads", [0, 0, 0, 0])) if layer.node.op_type == "AveragePool" else [0, 0, 0, 0]
        ones = t.const(np.ones((c, 1, *kernel)), np.float32)
        s = t.op("Conv", [as_float(layer.inputs[0]), ones], group=c, kernel_shape=kernel, strides=strides, pads=pads)
        s = t.to_int(s)  # the window sum: at most ks * 255, exact
        ks = kernel[0] * kernel[1]
        if layer.mul is None:  # PULP-NN divides in C: truncation toward zero (ORT's integer Div does the same)
            return t.op("Div", [s, t.const(ks, np.int64)])
        mul = int(np.asarray(layer.mul).reshape(-1)[0]) // ks
        return t.requant(s, mul, int(np.asarray(layer.add).reshape(-1)[0]), round(layer.div), lo, hi)
    wmat = np.asarray(layer.weight, np.float64)
    x = as_float(layer.inputs[0])
    if layer.kind == "fc":
        if len(layer.in_shape) == 3:
            x = t.op("Flatten", [x], axis=1)
        if a.get("transB", 0):
            wmat = wmat.T
        per_in = 1
        cin = wmat.shape[0]
    else:
        per_in = wmat.shape[2] * wmat.shape[3]
        cin = wmat.shape[1]
    w_bound = max(float(np.abs(wmat).max()), 1.0)
    chunk = max(1, (exact - 1) // math.ceil(per_in * x_bound * w_bound))
    if layer.kind == "conv" and a.get("group", 1) != 1:
        chunk = cin  # depthwise: one input channel per output, fan-in kh*kw only
    parts = []
    for start in range(0, cin, chunk):
        stop = min(cin, start + chunk)
        if layer.kind == "fc":
            xs = x if (start, stop) == (0, cin) else _slice(t, x, start, stop)
            parts.append(t.to_int(t.op("MatMul", [xs, t.const(wmat[start:stop], np.float32)])))
        else:
            xs = x if (start, stop) == (0, cin) else _slice(t, x, start, stop)
            conv_attrs = {k: a[k] for k in ("kernel_shape", "strides", "pads", "dilations", "group") if k in a}
            wpart = t.const(wmat[:, start:stop], np.float32)
            parts.append(t.to_int(t.op("Conv", [xs, wpart], **conv_attrs)))
    acc = parts[0]
    for p in parts[1:]:
        acc = t.op("Add", [acc, p])
    if layer.bias is not None:
        acc = t.op("Add", [acc, t.const(np.asarray(layer.bias).reshape(-1), np.int64)])
    if layer.mul is None:
        return acc
    shape = (-1, 1, 1) if layer.kind == "conv" else (-1,)
    mul, add = _ints(layer.mul).reshape(shape), _ints(layer.add).reshape(shape)
    return t.requant(acc, mul, add, round(layer.div), lo, hi)


def _slice(t: _Twin, x: str, start: int, stop: int) -> str:
    consts = [t.const([v], np.int64) for v in (start, stop, 1)]  # starts, ends, axes (channels)
    return t.op("Slice", [x, *consts])


def _ints(value) -> np.ndarray:
    value = np.asarray(value)
    return value.astype(np.int64) if value.dtype.kind in "iu" else np.rint(value.astype(np.float64)).astype(np.int64)
