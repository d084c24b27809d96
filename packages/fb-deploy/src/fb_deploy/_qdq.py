"""Standard QDQ ONNX export: the integer network as QuantizeLinear/DequantizeLinear for other edge runtimes.

Every activation is a ``QuantizeLinear`` output (uint8/int8, scale 1, zero point 0: the tensor holds the integer
network's own integers); weights are int8 initializers behind ``DequantizeLinear``. Sub-byte widths cannot be
stored as such in ONNX: a ``Clip`` to the b-bit range precedes each quantization and the widths are recorded in
the model's ``metadata_props`` (``fb_deploy.tensor_bits``, ``fb_deploy.weight_bits``). The requantization
``floor((acc * mul + add) / 2^d)`` becomes a per-channel weight scale ``mul / 2^d`` and a float offset; since
``(acc * mul + add - 2^(d-1) + 1/2) / 2^d`` is never a half-integer, rounding it equals the floor in exact
arithmetic. ONNX Runtime computes in float32, so products beyond 2^24 are rounded: the outputs match the integer
reference up to rare one-step differences (see ``compare_qdq``). The graph input takes real NCHW images; the
outputs are the real logits and the integer logits.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from fb_deploy._integer_network import IntegerNetwork, IntLayer, grid
from fb_deploy._reference import run_reference

QDQ_OPSET = 13


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.n = 0

    def const(self, value, dtype=np.float32, name: str | None = None) -> str:
        self.n += 1
        name = name or f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value).astype(dtype), name))
        return name

    def op(self, op: str, inputs: list[str], name: str | None = None, **kw) -> str:
        self.n += 1
        out = name or f"t{self.n}"
        self.nodes.append(helper.make_node(op, inputs, [out], **kw))
        return out

    def qdq(self, x: str, bits: int, signed: bool) -> str:
        """Clip to the b-bit grid, quantize to (u)int8 with scale 1, dequantize: the integer grid in float."""
        lo, hi = grid(bits, signed)
        x = self.op("Clip", [x, self.const(lo), self.const(hi)])
        zp = self.const(0, np.int8 if signed else np.uint8)
        q = self.op("QuantizeLinear", [x, self.const(1.0), zp])
        return self.op("DequantizeLinear", [q, self.const(1.0), zp])

    def weights(self, w: np.ndarray, scale: np.ndarray, axis: int) -> str:
        q = self.const(w, np.int8)
        return self.op("DequantizeLinear", [q, self.const(scale), self.const(np.zeros(len(scale)), np.int8)], axis=axis)


def build_qdq_model(int_net: IntegerNetwork) -> onnx.ModelProto:
    """The QDQ model of an integer network (opset 13).

    Input ``input``: real NCHW images; outputs ``logits`` (real) and ``logits_int`` (the int32 accumulator).
    """
    g = _Graph()
    _, h, w, c = int_net.input_shape_nhwc
    zp = g.const(0, np.int8 if int_net.input_signed else np.uint8)
    q = g.op("QuantizeLinear", ["input", g.const(int_net.input_scale), zp])
    names = {int_net.input_tensor: g.op("DequantizeLinear", [q, g.const(1.0), zp])}
    ranks = {int_net.input_tensor: (h, w, c)}
    tensor_bits, weight_bits = {}, {}
    for layer in int_net.layers:
        lt = layer.layer_type
        x = [names[t] for t in layer.inputs]
        if layer.op == "add":
            y = _add(g, layer, x)
        elif layer.op == "avgpool":
            y = _avgpool(g, layer, x[0])
        else:
            weight_bits[layer.name] = layer.w_bits
            y = _weighted(g, layer, x[0], ranks[layer.inputs[0]])
        if layer.mul is not None or layer.add_rq is not None:
            y = g.qdq(y, layer.out_bits, layer.out_signed)
            tensor_bits[layer.output] = layer.out_bits
        names[layer.output] = y
        ranks[layer.output] = (lt.out_ch,) if layer.op == "linear" else (*lt.out_hw, lt.out_ch)
    acc = names[int_net.output]
    g.op("Identity", [acc], name="logits_int")
    g.op("Mul", [acc, g.const(int_net.logit_scale)], name="logits")
    n_out = int_net.layers[-1].layer_type.out_ch
    graph = helper.make_graph(
        g.nodes,
        f"{int_net.network}_qdq",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, c, h, w])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [None, n_out]) for n in ("logits", "logits_int")],
        g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", QDQ_OPSET)], producer_name="fb-deploy")
    model.ir_version = 8
    helper.set_model_props(
        model,
        {"fb_deploy.tensor_bits": json.dumps(tensor_bits), "fb_deploy.weight_bits": json.dumps(weight_bits)},
    )
    onnx.checker.check_model(model, full_check=True)
    return model


def _add(g: _Graph, layer: IntLayer, x: list[str]) -> str:
    parts = []
    for xi, (m, a, s), signed in zip(x, layer.add_rq[:2], layer.in_signed):
        y = g.op("Add", [g.op("Mul", [xi, g.const(m / 2**s)]), g.const((a - 2 ** (s - 1) + 0.5) / 2**s)])
        parts.append(g.qdq(y, 8, signed))
    m, a, s = layer.add_rq[2]
    return g.op("Add", [g.op("Mul", [g.op("Add", parts), g.const(m / 2**s)]), g.const((a - 2 ** (s - 1) + 0.5) / 2**s)])


def _avgpool(g: _Graph, layer: IntLayer, x: str) -> str:
    lt = layer.layer_type
    ks = lt.kernel[0] * lt.kernel[1]
    if tuple(lt.kernel) == (lt.in_h, lt.in_w):
        y = g.op("GlobalAveragePool", [x])
    else:
        y = g.op("AveragePool", [x], kernel_shape=list(lt.kernel), strides=list(lt.stride))
    d = layer.shift
    y = g.op("Mul", [y, g.const(ks * (int(layer.mul) // ks) / 2**d)])
    return g.op("Add", [y, g.const((int(layer.add) - 2 ** (d - 1) + 0.5) / 2**d)])


def _weighted(g: _Graph, layer: IntLayer, x: str, src: tuple) -> str:
    """A conv or linear on dequantized integer weights (per-channel scale ``mul / 2^shift``), plus its offset;
    the classifier (no requantization) keeps unit scales and adds its bias."""
    lt = layer.layer_type
    final = layer.mul is None
    d = 0 if final else layer.shift
    scale = np.ones(lt.out_ch) if final else layer.mul / 2.0**d
    if layer.op == "linear":
        xin = g.op("Flatten", [x], axis=1) if len(src) == 3 else x
        wmat = layer.weight
        if len(src) == 3:  # ONNX flattens CHW; the integer network's rows are HWC
            wmat = wmat.reshape(*src, lt.out_ch).transpose(2, 0, 1, 3).reshape(-1, lt.out_ch)
        y = g.op("MatMul", [xin, g.weights(wmat, scale, axis=1)])
    else:
        wt = g.weights(layer.weight.transpose(3, 2, 0, 1), scale, axis=0)
        conv = dict(kernel_shape=list(lt.kernel), strides=list(lt.stride), pads=list(lt.padding))
        y = g.op("Conv", [x, wt], group=lt.groups, **conv)
    shape = (-1,) if layer.op == "linear" else (-1, 1, 1)
    if final:
        return g.op("Add", [y, g.const(layer.bias)]) if layer.bias is not None else y
    offset = (layer.add - 2 ** (d - 1) + 0.5) / 2.0**d
    return g.op("Add", [y, g.const(offset.reshape(shape))])


def compare_qdq(int_net: IntegerNetwork, model: onnx.ModelProto, x_real_nhwc: np.ndarray) -> dict[str, float]:
    """QDQ model in ONNX Runtime against the integer reference on real NHWC images.

    Returns:
        ``max_abs_lsb`` (largest integer-logit difference), ``max_rel`` (relative to the largest |logit|),
        ``exact_fraction`` (logits equal) and ``argmax_agreement``.
    """
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    sess = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    x = np.asarray(x_real_nhwc, np.float32)
    _, got = sess.run(None, {"input": x.transpose(0, 3, 1, 2)})
    ref = run_reference(int_net, int_net.quantize_input(x))
    diff = np.abs(np.rint(got) - ref)
    return {
        "samples": int(len(x)),
        "max_abs_lsb": float(diff.max()),
        "max_rel": float(diff.max() / max(np.abs(ref).max(), 1)),
        "exact_fraction": float((diff == 0).mean()),
        "argmax_agreement": float((got.argmax(1) == ref.argmax(1)).mean()),
    }


def export_qdq(int_net: IntegerNetwork, path) -> dict[str, float] | None:
    """Write the QDQ model to ``path``; returns its agreement with the integer reference on the reference inputs."""
    from fb_schema import write_atomic

    model = build_qdq_model(int_net)
    write_atomic(path, model.SerializeToString())
    if int_net.ref_inputs is None:
        return None
    return compare_qdq(int_net, model, int_net.ref_inputs)
