"""DORY-format ONNX export (DORY's QuantLab frontend, as QuantLab's ``export_net`` writes it) with config and
golden files.

Per layer: ``Conv``/``Gemm`` with explicit attributes and ``weight_bits``, then ``Mul -> Add -> Div -> Floor ->
Clip`` with per-channel ``[C,1,1]`` constants and ``out_bits``; ``GlobalAveragePool``/``AveragePool`` with a
scalar requant chain; ``MaxPool`` without one (its input and output share a grid); residual ``Add`` with its
integer attributes and ``add_bits``; ``Flatten -> Gemm`` head
with an int32 output. Opset 10, node outputs named ``"1"``, ``"2"``, ... in node order.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from fb_deploy._errors import DeployError, IntegerizationError
from fb_deploy._integer_network import IntegerNetwork, IntLayer, grid
from fb_deploy._integerize import FLOAT32_EXACT
from fb_deploy._reference import run_layers
from fb_schema import write_atomic

INPUT_NAME = "input.1"
OPSET = 10
DEFAULT_CODE_RESERVED = 160000


class _Builder:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def node(self, op: str, inputs: list[str], **attributes) -> str:
        self.count += 1
        out = str(self.count)
        self.nodes.append(helper.make_node(op, inputs, [out], **attributes))
        return out

    def const(self, name: str, value: np.ndarray, int_dtype=np.int32) -> str:
        """Integer-valued constants are float32 (as QuantLab stores them) when exact, else integer tensors."""
        value = np.asarray(value)
        if np.abs(value).max(initial=0) >= FLOAT32_EXACT:
            arr = value.astype(int_dtype)
        else:
            arr = value.astype(np.float32)
        self.inits.append(numpy_helper.from_array(arr, name))
        return name

    def requant(self, x: str, prefix: str, layer: IntLayer, shape: tuple[int, ...], requant_bits: int) -> str:
        int_dtype = np.int64 if requant_bits == 64 else np.int32
        k = self.const(f"{prefix}.mul", np.asarray(layer.mul).reshape(shape), int_dtype)
        lam = self.const(f"{prefix}.add", np.asarray(layer.add).reshape(shape), int_dtype)
        d = self.const(f"{prefix}.div", np.array(2.0**layer.shift))
        y = self.node("Mul", [x, k], mult_bits=requant_bits)
        y = self.node("Add", [y, lam], add_bits=requant_bits)
        y = self.node("Div", [y, d])
        y = self.node("Floor", [y])
        lo, hi = grid(layer.out_bits, layer.out_signed)
        return self.node("Clip", [y], min=float(lo), max=float(hi), out_bits=layer.out_bits)


def _dory_add_order(layer: IntLayer, x: list[str], prev: str | None) -> tuple[list[str], bool]:
    """The add's ONNX inputs in the order DORY runs them correctly (see ``_dory_add``), and whether it swapped.

    DORY's kernel takes the output of the layer just before the add as its first input but reads it at the type of
    ONNX input 0, and applies ``in1_*`` to it when ``int(input 0) > int(input 1)``: so that tensor goes first, with
    its own requantization in ``in1_*``; tensor numbers increase in node order, so it is the larger one.
    """
    if prev not in x:
        raise IntegerizationError(
            f"layer {layer.name!r}: DORY runs an add on the output of the layer just before it ({prev}), "
            f"which is not one of its inputs {x}; order the topology so that one branch ends right before the add"
        )
    if x[0] == x[1]:
        raise IntegerizationError(
            f"layer {layer.name!r}: adds tensor {x[0]} to itself; DORY's network.c saves no branch tensor for it "
            "and the application hangs"
        )
    swap = x[0] != prev
    x = [x[1], x[0]] if swap else x
    if not (x[0].isdigit() and x[1].isdigit() and int(x[0]) > int(x[1])):
        raise IntegerizationError(f"layer {layer.name!r}: add inputs {x}: DORY needs increasing integer tensor names")
    return x, swap


def build_dory_model(int_net: IntegerNetwork) -> onnx.ModelProto:
    """The DORY-format ONNX model of an integer network."""
    b = _Builder()
    _, h, w, c = int_net.input_shape_nhwc
    names = {int_net.input_tensor: INPUT_NAME}
    shapes = {int_net.input_tensor: (h, w, c)}
    prev = None  # the ONNX output of the layer exported last: DORY runs the next layer on it
    for layer in int_net.layers:
        lt = layer.layer_type
        x = [names[t] for t in layer.inputs]
        if layer.op in ("conv2d", "depthwise_conv2d"):
            y = _conv(b, layer, x[0], int_net.requant_bits)
        elif layer.op == "linear":
            y = _linear(b, layer, x[0], shapes[layer.inputs[0]], int_net.requant_bits)
        elif layer.op in ("maxpool", "avgpool"):
            y = _pool(b, layer, x[0])
        else:
            y = _add(b, layer, x, prev)
        names[layer.output] = prev = y
        shapes[layer.output] = (lt.out_ch,) if layer.op == "linear" else (*lt.out_hw, lt.out_ch)
    last = int_net.layers[-1].layer_type
    out_shape = [1, last.out_ch] if int_net.layers[-1].op == "linear" else [1, last.out_ch, *last.out_hw]
    graph = helper.make_graph(
        b.nodes,
        int_net.network,
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [1, c, h, w])],
        [helper.make_tensor_value_info(names[int_net.output], TensorProto.FLOAT, out_shape)],
        b.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="fb-deploy")
    model.ir_version = 6
    return model


def _conv(b: _Builder, layer: IntLayer, x: str, requant_bits: int) -> str:
    """A (depthwise) Conv on OIHW integer weights, then its requantization."""
    lt = layer.layer_type
    wt = b.const(f"{layer.name}.weight", layer.weight.transpose(3, 2, 0, 1))
    y = b.node(
        "Conv",
        [x, wt],
        kernel_shape=list(lt.kernel),
        strides=list(lt.stride),
        pads=list(lt.padding),
        dilations=[1, 1],
        group=lt.groups,
        weight_bits=layer.w_bits,
        bias_bits=32,
    )
    return b.requant(y, layer.name, layer, (lt.out_ch, 1, 1), requant_bits)


def _linear(b: _Builder, layer: IntLayer, x: str, src_shape: tuple, requant_bits: int) -> str:
    """A Gemm (after a Flatten where it reads a feature map), requantized unless it is the classifier."""
    lt = layer.layer_type
    if len(src_shape) == 3:
        x = b.node("Flatten", [x], axis=1)
        # ONNX flattens CHW; DORY itself permutes CHW-ordered FC weights to its HWC layout.
        wmat = layer.weight.reshape(*src_shape, lt.out_ch).transpose(2, 0, 1, 3).reshape(-1, lt.out_ch)
    else:
        wmat = layer.weight
    inputs = [x, b.const(f"{layer.name}.weight", wmat)]
    if layer.bias is not None:
        inputs.append(b.const(f"{layer.name}.bias", layer.bias))
    y = b.node("Gemm", inputs, alpha=1.0, beta=1.0, transB=0, weight_bits=layer.w_bits, bias_bits=32)
    if layer.mul is not None:
        y = b.requant(y, layer.name, layer, (lt.out_ch,), requant_bits)
    return y


def _pool(b: _Builder, layer: IntLayer, x: str) -> str:
    """A MaxPool, or a (global) average pool and its requantization."""
    lt = layer.layer_type
    if layer.op == "maxpool":
        return b.node("MaxPool", [x], kernel_shape=list(lt.kernel), strides=list(lt.stride), pads=list(lt.padding))
    if tuple(lt.kernel) == (lt.in_h, lt.in_w):
        y = b.node("GlobalAveragePool", [x])
    else:
        y = b.node("AveragePool", [x], kernel_shape=list(lt.kernel), strides=list(lt.stride), pads=[0] * 4)
    return b.requant(y, layer.name, layer, (), 32)


def _add(b: _Builder, layer: IntLayer, x: list[str], prev: str | None) -> str:
    """A residual Add with both inputs and the output requantized, inputs in the order DORY needs."""
    (m1, a1, s1), (m2, a2, s2), (mo, ao, so) = layer.add_rq
    n1, n2 = 2 ** layer.in_bits[0], 2 ** layer.in_bits[1]
    x, swap = _dory_add_order(layer, x, prev)
    if swap:
        (m1, a1, s1, n1), (m2, a2, s2, n2) = (m2, a2, s2, n2), (m1, a1, s1, n1)
    return b.node(
        "Add",
        x,
        in1_mul=m1,
        in1_add=a1,
        in1_shift=s1,
        in1_n_levels=n1,
        in1_rq=1,
        in2_mul=m2,
        in2_add=a2,
        in2_shift=s2,
        in2_n_levels=n2,
        in2_rq=1,
        out_mul=mo,
        out_add=ao,
        out_shift=so,
        out_n_levels=2**layer.out_bits,
        out_rq=1,
        out_signed=int(layer.out_signed),
        add_bits=8,
    )


def write_golden(path: Path, values: np.ndarray, title: str) -> None:
    """One integer per line in HWC order (channel fastest), with a ``#`` header line, as QuantLab writes them."""
    flat = np.asarray(values).reshape(-1)
    shape = list(np.asarray(values).shape)
    write_atomic(path, f"# {title} (shape {shape}),\n" + "".join(f"{int(v)},\n" for v in flat))


def export_dory(
    int_net: IntegerNetwork,
    out_dir: str | os.PathLike,
    code_reserved: int = DEFAULT_CODE_RESERVED,
    x_nhwc: np.ndarray | None = None,
) -> Path:
    """Write ``model.onnx``, ``config.json``, ``input.txt``, ``out_layer{i}.txt`` and the integer network.

    Args:
        int_net: the integerized network.
        out_dir: the DORY model directory (created).
        code_reserved: DORY's ``"code reserved space"`` (bytes of L2 kept for code).
        x_nhwc: the golden input image (integers, ``[1,H,W,C]``); default: the first reference input.

    Returns:
        The directory. Golden layer ``i`` is the output of the i-th fused DORY layer.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if x_nhwc is None:
        if int_net.ref_inputs is not None:
            x_nhwc = int_net.quantize_input(int_net.ref_inputs[:1])
        else:
            lo, hi = grid(int_net.input_bits, int_net.input_signed)
            x_nhwc = np.random.default_rng(0).integers(lo, hi + 1, int_net.input_shape_nhwc)
    x_nhwc = np.asarray(x_nhwc).reshape(int_net.input_shape_nhwc)
    values = run_layers(int_net, x_nhwc)
    write_atomic(out / "model.onnx", build_dory_model(int_net).SerializeToString())
    config = {
        "BNRelu_bits": int_net.requant_bits,
        "onnx_file": "model.onnx",
        "code reserved space": code_reserved,
        "n_inputs": 1,
        "input_bits": int_net.input_bits,
        "input_signed": int_net.input_signed,
    }
    write_atomic(out / "config.json", json.dumps(config, indent=4) + "\n")
    write_golden(out / "input.txt", x_nhwc[0], "input")
    for i, layer in enumerate(int_net.layers):
        write_golden(out / f"out_layer{i}.txt", values[layer.output][0], layer.name)
    int_net.save(out / "integer_network.json")
    return out


def read_golden(path: str | os.PathLike) -> np.ndarray:
    """Integers of a DORY golden text file (``#`` comments and trailing commas allowed).

    Raises:
        DeployError: the file is unreadable or holds something other than integers; names the file and line.
    """
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DeployError(f"{path}: not a readable golden file ({exc})") from None
    vals = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            try:
                vals.extend(_integer(v) for v in line.split(",") if v.strip())
            except ValueError:
                raise DeployError(
                    f"{path}: line {number}: comma-separated integers expected, got {line[:40]!r}"
                ) from None
    return np.array(vals, np.int64)


def _integer(text: str) -> int:
    value = float(text)
    if not value.is_integer():
        raise ValueError(text)
    return int(value)
