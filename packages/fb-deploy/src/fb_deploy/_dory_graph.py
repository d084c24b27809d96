"""Reading a DORY-format (QuantLab frontend) ONNX model back into its fused layers, as DORY itself sees them.

Shared by the checker (precision propagation, channel packing, L2 estimate) and the ONNX Runtime twin. The rules
follow DORY's QuantLab frontend (``Parser.py``, ``Pattern_rewriter.py``, ``rules.json``): neglected ops are skipped,
a ``Mul -> Add -> Div -> Floor -> Clip`` chain fuses into the preceding layer, a residual ``Add`` carries its
requantization in attributes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import helper, numpy_helper

from fb_schema import SchemaError, read_json

LAYER_OPS = {"Conv", "Gemm", "MatMul", "AveragePool", "GlobalAveragePool", "MaxPool"}
NEGLECTED_OPS = {"Cast", "Floor", "Flatten", "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Reshape"}
NEGLECTED_OPS |= {"Sigmoid", "LogSoftmax"}
ADD_ATTRS = tuple(f"{p}_{a}" for p in ("in1", "in2", "out") for a in ("mul", "add", "shift", "n_levels", "rq"))
KIND_NAMES = {"conv": "Convolution", "fc": "FullyConnected", "pool": "Pooling", "maxpool": "Pooling"}


def attrs(node: onnx.NodeProto) -> dict[str, Any]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


@dataclass
class DoryLayer:
    """One fused DORY layer: its ONNX node, the requant chain folded into it and the propagated precisions."""

    index: int
    kind: str  # conv | fc | pool | maxpool | add
    node: onnx.NodeProto
    inputs: list[str]
    output: str
    in_shape: tuple[int, ...]  # C, H, W (fc: C)
    out_shape: tuple[int, ...]
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    weight_bits: int | None = None
    mul: np.ndarray | None = None
    add: np.ndarray | None = None
    div: float | None = None
    clip: dict[str, Any] | None = None
    in_bits: list[int] = field(default_factory=list)
    in_signed: list[bool] = field(default_factory=list)
    out_bits: int = 32
    out_signed: bool = True

    @property
    def name(self) -> str:
        """The name DORY gives it in ``Layers_name[]`` (e.g. ``BNReluConvolution3``)."""
        if self.kind == "add":
            return f"Addition{self.index}"
        prefix = ""
        if self.mul is not None:
            prefix = "BNRelu" if self.kind in ("conv", "fc") else "Requant"
        return f"{prefix}{KIND_NAMES[self.kind]}{self.index}"

    @property
    def attrs(self) -> dict[str, Any]:
        return attrs(self.node)


@dataclass
class DoryGraph:
    model: onnx.ModelProto
    consts: dict[str, np.ndarray]
    shapes: dict[str, tuple[int, ...]]
    layers: list[DoryLayer]
    config: dict[str, Any]
    input_name: str


def load_model_dir(path: str | Path) -> tuple[Path, dict[str, Any], Path]:
    """Resolve a model directory, ``config.json`` or ``.onnx`` path to (onnx path, config, directory).

    Raises:
        SchemaError: ``config.json`` is not valid JSON or a field has the wrong type (names file and field).
    """
    path = Path(path)
    config: dict[str, Any] = {}
    if path.is_dir():
        path = path / "config.json" if (path / "config.json").exists() else path / "model.onnx"
    if path.suffix == ".json":
        config = read_config(path)
        return path.parent / config.get("onnx_file", "model.onnx"), config, path.parent
    cfg = path.parent / "config.json"
    if cfg.exists():
        config = read_config(cfg)
    return path, config, path.parent


# DORY's config.json fields that this package reads, with their types (bool is not an int here).
CONFIG_FIELDS = {
    "BNRelu_bits": (int, "an integer (32 or 64)"),
    "n_inputs": (int, "a positive integer"),
    "input_bits": (int, "an integer bit width"),
    "input_signed": (bool, "true or false"),
    "onnx_file": (str, "a file name"),
    "code reserved space": (int, "a number of bytes"),
}


def read_config(path: Path) -> dict[str, Any]:
    """DORY's ``config.json``, with the fields we read type-checked."""
    config = read_json(path)
    if not isinstance(config, dict):
        raise SchemaError(str(path), "<root>", f"a JSON object, got {type(config).__name__}")
    for name, (kind, expected) in CONFIG_FIELDS.items():
        value = config.get(name)
        wrong = not isinstance(value, kind) or (kind is int and isinstance(value, bool))
        if name in config and (wrong or (name == "n_inputs" and value < 1)):
            raise SchemaError(str(path), name, f"{expected}, got {value!r}")
    return config


def constants(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant" and "value" in attrs(node):
            out[node.output[0]] = numpy_helper.to_array(attrs(node)["value"])
    return out


def inferred_shapes(model: onnx.ModelProto) -> dict[str, tuple[int, ...]]:
    """Static shapes (without the batch) of every tensor, as DORY obtains them from ONNX shape inference."""
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # noqa: BLE001 - DORY tolerates what inference cannot do; so do we
        inferred = model
    shapes = {}
    for vi in [*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output]:
        dims = vi.type.tensor_type.shape.dim
        if dims and all(d.HasField("dim_value") for d in dims):
            shapes[vi.name] = tuple(d.dim_value for d in dims)[1:]
    return shapes


def parse(model: onnx.ModelProto, config: dict[str, Any]) -> DoryGraph:
    """Fuse the graph into DORY layers and propagate bit widths and signedness from the input onwards."""
    consts = constants(model)
    shapes = inferred_shapes(model)
    graph_inputs = [i.name for i in model.graph.input if i.name not in consts]
    input_name = graph_inputs[0]
    prec = {input_name: (int(config.get("input_bits", 8)), bool(config.get("input_signed", False)))}
    alias: dict[str, str] = {}
    layers: list[DoryLayer] = []
    current: DoryLayer | None = None

    def src(t: str) -> str:
        while t in alias:
            t = alias[t]
        return t

    for node in model.graph.node:
        op = node.op_type
        if op == "Constant":
            continue
        ins = [src(t) for t in node.input if t not in consts]
        if op in NEGLECTED_OPS:
            if ins:
                alias[node.output[0]] = ins[0]
            continue
        if op in ("Mul", "Div", "Clip") or (op == "Add" and len(ins) < 2):
            if current is not None and ins and ins[0] == current.output:
                _fold(current, node, consts)
                current.output = node.output[0]
                if op == "Clip":
                    prec[current.output] = (current.out_bits, current.out_signed)
            continue
        kind = {"Conv": "conv", "Gemm": "fc", "MatMul": "fc", "MaxPool": "maxpool", "Add": "add"}.get(op, "pool")
        in_shape = shapes.get(ins[0], ()) if ins else ()
        layer = DoryLayer(len(layers), kind, node, ins, node.output[0], in_shape, shapes.get(node.output[0], ()))
        layer.in_bits = [prec.get(t, (8, False))[0] for t in ins]
        layer.in_signed = [prec.get(t, (8, False))[1] for t in ins]
        a = attrs(node)
        if kind in ("conv", "fc"):
            layer.weight = consts.get(node.input[1]) if len(node.input) > 1 else None
            layer.bias = consts.get(node.input[2]) if len(node.input) > 2 else None
            layer.weight_bits = a.get("weight_bits")
            layer.out_bits, layer.out_signed = 32, True
        elif kind == "add":
            n_levels = a.get("out_n_levels", 256)
            layer.out_bits = round(math.log2(n_levels)) if n_levels > 0 else 8
            both_uint = not any(layer.in_signed)
            layer.out_signed = bool(a["out_signed"]) if "out_signed" in a else not both_uint
        else:
            layer.out_bits, layer.out_signed = layer.in_bits[0], layer.in_signed[0]
        prec[layer.output] = (layer.out_bits, layer.out_signed)
        layers.append(layer)
        current = layer
    return DoryGraph(model, consts, shapes, layers, config, input_name)


def _fold(layer: DoryLayer, node: onnx.NodeProto, consts: dict[str, np.ndarray]) -> None:
    const = next((consts[t] for t in node.input if t in consts), None)
    op = node.op_type
    if op == "Mul":
        layer.mul = const
    elif op == "Add":
        layer.add = const
    elif op == "Div":
        layer.div = None if const is None else float(np.asarray(const).reshape(-1)[0])
    else:
        a = attrs(node)
        layer.clip = a
        layer.out_bits = int(a.get("out_bits", 8))
        layer.out_signed = float(a.get("min", 0.0)) < 0
