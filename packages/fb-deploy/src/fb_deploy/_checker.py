"""The DORY model checker: the hard rules of DORY's QuantLab frontend and PULP backend, one by one, each
naming the rule and the node.

Errors are what makes DORY fail (often cryptically, sometimes by exiting 0 without output) or silently compute
something other than the graph says; warnings are recommendations. Rule ids are stable (used by tests and CLI).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from fb_deploy._dory_add import add_reading
from fb_deploy._dory_graph import (
    ADD_ATTRS,
    LAYER_OPS,
    NEGLECTED_OPS,
    attrs,
    constants,
    inferred_shapes,
    load_model_dir,
    parse,
)
from fb_deploy._errors import DeployError
from fb_deploy._export import read_golden
from fb_deploy._integer_network import grid
from fb_deploy._integerize import packing_multiple
from fb_deploy._memory import L2_BYTES, l2_report

WHITELIST = LAYER_OPS | NEGLECTED_OPS | {"Pad", "Mul", "Add", "Div", "Constant", "Clip"}
DORY_BITS = (2, 4, 8)


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    rule: str
    node: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: [{self.rule}] {self.node}: {self.message}"


def errors(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def _label(node: onnx.NodeProto) -> str:
    return f"{node.op_type} -> {node.output[0] if node.output else '?'}"


def check_model(path: str | os.PathLike) -> list[Finding]:
    """Check a DORY model (``.onnx`` file, its directory or its ``config.json``) against DORY's QuantLab rules.

    Returns:
        Findings, errors first; an empty list means DORY accepts the model as far as the rules know.
    """
    onnx_path, config, directory = load_model_dir(path)
    if not Path(onnx_path).exists():
        return [Finding("error", "model-file", str(onnx_path), "ONNX file not found")]
    try:
        model = onnx.load(onnx_path)
    except Exception as exc:  # noqa: BLE001 - any parse failure is a finding, not a crash
        return [Finding("error", "model-file", str(onnx_path), f"not a readable ONNX model ({exc})")]
    out: list[Finding] = []
    err = lambda rule, node, msg: out.append(Finding("error", rule, node, msg))  # noqa: E731
    warn = lambda rule, node, msg: out.append(Finding("warning", rule, node, msg))  # noqa: E731
    _global_rules(model, err)
    _node_rules(model, err, warn)
    _dropped_op_rules(model, err)
    if not errors(out):
        graph = parse(model, config)
        _precision_rules(graph, err, warn)
        _requant_overflow_rules(graph, err, warn, proven=(Path(directory) / "integer_network.json").exists())
        if config:
            _config_rules(graph, config, Path(directory), err, warn)
            _golden_rules(graph, config, Path(directory), err)
            out.extend(l2_findings(graph, config))
    return sorted(out, key=lambda f: f.severity != "error")


def _global_rules(model: onnx.ModelProto, err) -> None:
    for op in model.opset_import:
        if op.domain in ("", "ai.onnx") and op.version > 10:
            err("opset", "model", f"opset {op.version}; DORY needs opset <= 10 (Clip/Pad with attributes)")
    consts = constants(model)
    inputs = [i for i in model.graph.input if i.name not in consts]
    if len(inputs) != 1:
        err("input-shape", "graph", f"exactly one graph input expected, got {len(inputs)}")
    else:
        dims = inputs[0].type.tensor_type.shape.dim
        values = [d.dim_value if d.HasField("dim_value") else None for d in dims]
        if len(values) != 4 or None in values or values[0] != 1:
            err("input-shape", inputs[0].name, f"a static [1, C, H, W] input expected, got {values}")
    last = 0
    for node in model.graph.node:
        for name in node.output:
            if not name.isdigit():
                err("numeric-names", _label(node), f"output name {name!r} is not an integer string")
            elif int(name) <= last:
                err("numeric-names", _label(node), f"output name {name} does not increase in node order")
            else:
                last = int(name)
    first = next((n for n in model.graph.node if n.op_type not in ("Constant", "Pad")), None)
    if first is not None and first.op_type not in ("Conv", "Gemm", "MatMul"):
        # DORY's QuantLab frontend reads the weights' name from the first node (UnboundLocalError otherwise)
        err("first-node", _label(first), "the first node must be a layer with weights (Conv, Gemm, MatMul)")


def _node_rules(model: onnx.ModelProto, err, warn) -> None:
    consts = constants(model)
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    shapes = None
    producer = {o: n for n in nodes for o in n.output}
    later_layer = [any(m.op_type in LAYER_OPS | {"Add", "Mul"} for m in nodes[i + 1 :]) for i in range(len(nodes))]
    for i, node in enumerate(nodes):
        label, op, a = _label(node), node.op_type, attrs(node)
        dyn = [t for t in node.input if t not in consts]
        if op not in WHITELIST:
            err("op-whitelist", label, f"{op} is not supported by DORY's QuantLab frontend")
            continue
        if op in NEGLECTED_OPS and later_layer[i] and i > 0 and dyn and dyn[0] != nodes[i - 1].output[0]:
            err(
                "neglected-order", label, f"DORY drops {op} and rewires from the previous node; it must follow {dyn[0]}"
            )
        if op == "Clip":
            if len(node.input) > 1:
                err("clip-attributes", label, "min/max given as inputs (opset 11+); DORY reads them as attributes")
            elif "min" not in a or "max" not in a:
                err("clip-attributes", label, "Clip needs min and max attributes")
            if a.get("out_bits") not in DORY_BITS:
                err("clip-out-bits", label, f"out_bits must be one of {list(DORY_BITS)}, got {a.get('out_bits')}")
            elif "min" in a and "max" in a:
                lo, hi = grid(a["out_bits"], a["min"] < 0)
                if (a["min"], a["max"]) != (lo, hi):
                    err("clip-range", label, f"kernels clip to the full {a['out_bits']}-bit range [{lo}, {hi}]")
        if op == "Pad" and "pads" not in a:
            err("pad-attribute", label, "Pad needs its pads as an attribute (opset <= 10)")
        if op == "Conv":
            missing = [k for k in ("kernel_shape", "strides", "pads", "dilations", "group") if k not in a]
            if missing or "auto_pad" in a:
                err("conv-attributes", label, f"explicit attributes needed, missing {missing or ['(auto_pad set)']}")
        if op in ("AveragePool", "MaxPool"):
            missing = [k for k in ("kernel_shape", "strides", "pads") if k not in a]
            if missing:
                err("pool-attributes", label, f"explicit attributes needed, missing {missing}")
        if op in ("Conv", "Gemm", "MatMul"):
            _weight_rules(node, label, a, consts, err, warn)
        if op == "Add" and len(dyn) == 2:
            missing = [k for k in (*ADD_ATTRS, "add_bits") if k not in a]
            if missing:
                err("residual-add-attributes", label, f"residual Add lacks integer attributes {missing}")
            if shapes is None:
                shapes = inferred_shapes(model)
            s1, s2 = shapes.get(dyn[0]), shapes.get(dyn[1])
            if s1 and s2 and s1 != s2:
                err("residual-add-shapes", label, f"inputs of shapes {list(s1)} and {list(s2)}; no broadcasting")
        if op == "Mul" and len(dyn) == 1:
            _chain_rules(nodes, i, consts, producer, err)
        if op in ("Mul", "Add", "Div") and len(dyn) == 1:
            for t in node.input:
                v = consts.get(t)
                if v is not None and v.dtype.kind == "f" and np.abs(v).max(initial=0) >= 2**24:
                    warn("float32-exactness", label, f"float32 constant {t!r} reaches 2^24; store it as int32/int64")


def _weight_rules(node, label, a, consts, err, warn) -> None:
    if len(node.input) < 2 or node.input[1] not in consts:
        err("constant-operand", label, "weights must be an initializer or a Constant")
        return
    w = consts[node.input[1]]
    bits = a.get("weight_bits")
    if bits not in DORY_BITS:
        err("weight-bits", label, f"weight_bits attribute must be one of {list(DORY_BITS)}, got {bits}")
    elif not np.array_equal(w, np.round(w)) or w.min() < -(2 ** (bits - 1)) or w.max() > 2 ** (bits - 1) - 1:
        err("weight-values", label, f"weights must be integers in [{-(2 ** (bits - 1))}, {2 ** (bits - 1) - 1}]")
    if node.op_type == "Conv":
        group = a.get("group", 1)
        if group != 1 and not (w.shape[1] == 1 and w.shape[0] == group):
            err("conv-groups", label, f"group={group}: only depthwise ([C,1,kh,kw], group == C) or group 1")
    if node.op_type in ("Gemm", "Conv") and len(node.input) > 2 and "bias" not in node.input[2]:
        err("bias-name", label, f"DORY finds biases by name: {node.input[2]!r} must contain 'bias'")
    if node.op_type == "Gemm" and a.get("transB", 0) and w.ndim == 2 and w.shape[0] == w.shape[1]:
        err(
            "fc-weight-layout", label, "square weight with transB=1: DORY's layout guess transposes it; use [Cin, Cout]"
        )


def _chain_rules(nodes, i, consts, producer, err) -> None:
    """Mul -> Add -> Div -> (Floor) -> Clip, consecutive, per channel after Conv/FC, scalar after pooling."""
    mul = nodes[i]
    label = _label(mul)
    chain = [n.op_type for n in nodes[i : i + 5]]
    if chain[:2] != ["Mul", "Add"]:
        err("requant-add", label, f"requant chain {'->'.join(chain[:4])} lacks the Add (Mul->Add->Div->Floor->Clip)")
        return
    div_at = i + 2
    if len(nodes) <= div_at or nodes[div_at].op_type != "Div":
        err("requant-chain", label, "Mul->Add must be followed by Div (power of two), Floor and Clip")
        return
    div = next((consts[t] for t in nodes[div_at].input if t in consts), None)
    d = None if div is None else float(np.asarray(div).reshape(-1)[0])
    if d is None or d <= 0 or 2 ** round(math.log2(d)) != d:
        err("requant-div", _label(nodes[div_at]), f"the divisor must be a constant power of two, got {d}")
    rest = [n.op_type for n in nodes[div_at + 1 : div_at + 3]]
    if not (rest[:1] == ["Clip"] or rest == ["Floor", "Clip"]):
        err("requant-chain", label, "Div must be followed by Floor and Clip")
    k = next((consts[t] for t in mul.input if t in consts), None)
    lam = next((consts[t] for t in nodes[i + 1].input if t in consts), None)
    src = producer.get(next(t for t in mul.input if t not in consts))
    kind = src.op_type if src is not None else "input"
    if kind in ("Conv", "Gemm", "MatMul"):
        channels = _out_channels(src, consts)
        for name, v in (("mul", k), ("add", lam)):
            if v is None or np.asarray(v).ndim == 0:
                err("requant-per-channel", label, f"scalar {name} after {kind}: DORY needs per-channel [C,1,1]")
            elif channels is not None and np.asarray(v).size != channels:
                err("requant-per-channel", label, f"{name} has {np.asarray(v).size} values for {channels} channels")
    elif kind == "MaxPool":
        err("maxpool-requant", label, "DORY's max-pool template drops a requant; do not requantize after MaxPool")
    elif kind in ("AveragePool", "GlobalAveragePool"):
        if k is not None and np.asarray(k).size != 1:
            err("pool-requant-scalar", label, "requant after average pooling must be scalar")
    elif kind == "Add":
        err("residual-add-requant", label, "fold the residual Add's requant into its out_mul/out_add/out_shift")
    elif kind == "input":
        err("first-node", label, "a requant chain on the network input cannot be fused into a layer")


def _out_channels(node: onnx.NodeProto, consts) -> int | None:
    """Output channels of a Conv ([O,I,kh,kw]) or FC (Gemm transB=1: [O,I]; else [I,O]) from its weights."""
    w = consts.get(node.input[1]) if len(node.input) > 1 else None
    if w is None:
        return None
    if node.op_type == "Conv" or (node.op_type == "Gemm" and attrs(node).get("transB")):
        return w.shape[0]
    return w.shape[1]


def _precision_rules(graph, err, warn) -> None:
    for layer in graph.layers:
        label = f"{layer.name} ({_label(layer.node)})"
        if layer.kind == "add":
            reading = add_reading(graph, layer)
            problems = [("residual-add-order", reading)] if isinstance(reading, str) else reading.problems(layer)
            for rule, message in problems:
                err(rule, label, message)
        if layer.kind == "pool" and layer.mul is not None:
            c, h, w = layer.in_shape
            a = layer.attrs
            ks = h * w if layer.node.op_type == "GlobalAveragePool" else int(np.prod(a.get("kernel_shape", [1])))
            mul = float(np.asarray(layer.mul).reshape(-1)[0])
            if mul % ks:
                err("avgpool-mul", label, f"requant mul {mul:g} is not a multiple of the window size {ks}")
        if layer.kind in ("conv", "fc") and layer.weight_bits in DORY_BITS:
            ch_out = layer.out_shape[0] if layer.out_shape else None
            ch_in = layer.in_shape[0] if layer.in_shape else None
            bits = [*layer.in_bits, layer.weight_bits] + ([layer.out_bits] if layer.out_bits <= 8 else [])
            m = packing_multiple(*bits)
            if ch_out is not None and ch_out % m:
                err("channel-packing", label, f"{ch_out} output channels are not a multiple of {m}")
            if ch_in is not None and ch_in % packing_multiple(*layer.in_bits):
                err("channel-packing", label, f"{ch_in} input channels do not pack at {layer.in_bits[0]} bits")


# Ops DORY drops that change values: the network DORY runs is not the graph's unless nothing follows them.
VALUE_OPS = {"Sigmoid", "LogSoftmax"}
# Ops DORY drops that change only shapes: harmless on the way into a fully connected layer, nowhere else.
SHAPE_OPS = {"Flatten", "Reshape", "Squeeze", "Unsqueeze"}


def _dropped_op_rules(model: onnx.ModelProto, err) -> None:
    """DORY skips its neglected ops and rewires around them; refuse those whose absence changes the result."""
    nodes = [n for n in model.graph.node if n.op_type != "Constant"]
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for n in nodes:
        for t in n.input:
            consumers.setdefault(t, []).append(n)
    for i, node in enumerate(nodes):
        later = any(m.op_type in LAYER_OPS | {"Add", "Mul", "Div", "Clip"} for m in nodes[i + 1 :])
        if node.op_type in VALUE_OPS and later:  # at the very end it only relabels the logits
            err("dropped-op", _label(node), f"DORY drops {node.op_type}, so the layers after it see other values")
        elif node.op_type in SHAPE_OPS:
            bad = sorted({m.op_type for m in _data_consumers(node, consumers)} - {"Gemm", "MatMul"})
            if bad:
                err(
                    "dropped-op", _label(node), f"DORY drops {node.op_type}; allowed only before Gemm/MatMul, not {bad}"
                )


def _data_consumers(node: onnx.NodeProto, consumers: dict) -> list[onnx.NodeProto]:
    """The nodes that read ``node``'s output as data, looking through further shape-only ops."""
    out, todo = [], [node]
    while todo:
        n = todo.pop()
        for m in consumers.get(n.output[0], []) if n.output else []:
            if m.op_type in SHAPE_OPS and m.input[0] == n.output[0]:
                todo.append(m)
            elif m.op_type not in ("Shape", "Gather", "Concat", "Cast"):  # shape arithmetic, not data
                out.append(m)
    return out


def _requant_overflow_rules(graph, err, warn, proven: bool) -> None:
    """``|acc * mul + add|`` must fit DORY's ``BNRelu_bits`` for every input the bit widths allow.

    An error at 64 bits, for constants that do not fit the width at all, and for fb-deploy's own exports
    (``proven``: their integerizer proved the bound, so a breach means other constants or another width than
    it proved); for foreign 32-bit models a warning, since QuantLab does not bound the worst case. The
    arithmetic is in Python ints: at 64 bits an int64 or float64 product can wrap or round into a false pass.
    """
    bits = graph.config.get("BNRelu_bits", 32)
    if bits not in (32, 64):
        return  # the config rule reports it
    limit = 2 ** (bits - 1)
    for layer in graph.layers:
        if layer.kind not in ("conv", "fc") or layer.mul is None or layer.weight_bits not in DORY_BITS:
            continue
        label = f"{layer.name} ({_label(layer.node)})"
        mul = _magnitudes(layer.mul)
        add = _magnitudes(layer.add if layer.add is not None else 0)
        if max(mul + add) >= limit:
            err("requant-overflow", label, f"a requant constant of magnitude {max(mul + add)} does not fit int{bits}")
            continue
        acc = _acc_bound(layer)
        worst = max(acc * m + a for m, a in zip(mul, add * len(mul) if len(add) == 1 else add))
        if worst >= limit:
            report = err if bits == 64 or proven else warn
            report("requant-overflow", label, f"|acc*mul + add| can reach {worst} >= 2^{bits - 1} (|acc| <= {acc})")


def _magnitudes(values) -> list[int]:
    return [abs(int(v)) for v in np.round(np.asarray(values, np.float64)).reshape(-1)]


def _acc_bound(layer) -> int:
    """``fan_in * max|x| * max|w| (+ max|bias|)`` from the bit widths alone."""
    w = np.asarray(layer.weight)
    fan = int(np.prod(w.shape[1:])) if layer.kind == "conv" else int(w.shape[0])
    x_max = 2 ** (layer.in_bits[0] - 1) if layer.in_signed[0] else 2 ** layer.in_bits[0] - 1
    acc = fan * x_max * 2 ** (layer.weight_bits - 1)
    return acc + (max(_magnitudes(layer.bias)) if layer.bias is not None and np.size(layer.bias) else 0)


def _golden_rules(graph, config, directory: Path, err) -> None:
    """Every golden file present holds integers, as many as its tensor has (DORY compares them one by one)."""
    n = config.get("n_inputs", 1)
    sizes = {"input.txt" if n == 1 else f"input_{k}.txt": graph.shapes.get(graph.input_name) for k in range(n)}
    for i, layer in enumerate(graph.layers):
        for k in range(n):
            sizes[f"out_layer{i}.txt" if n == 1 else f"out_{k}_layer{i}.txt"] = layer.out_shape
    for name, shape in sizes.items():
        if not (directory / name).exists():
            continue  # the golden-files rule reports it
        try:
            values = read_golden(directory / name)
        except DeployError as exc:
            err("golden-values", name, str(exc).split(": ", 1)[-1])
            continue
        if shape and values.size != int(np.prod(shape)):
            err("golden-values", name, f"{values.size} values for a tensor of shape {list(shape)}")


def _config_rules(graph, config, directory: Path, err, warn) -> None:
    if config.get("BNRelu_bits", 32) not in (32, 64):
        err("config", "config.json", f"BNRelu_bits must be 32 or 64, got {config.get('BNRelu_bits')}")
    if config.get("input_signed", False):
        warn("signed-input", "config.json", "signed input.txt needs DORY under numpy < 1.24")
    n = int(config.get("n_inputs", 1))
    names = ["input.txt"] if n == 1 else [f"input_{k}.txt" for k in range(n)]
    layer_files = [f"out_layer{i}.txt" for i in range(len(graph.layers))]
    if n > 1:
        layer_files = [f"out_{k}_layer{i}.txt" for k in range(n) for i in range(len(graph.layers))]
    missing = [f for f in names + layer_files if not (directory / f).exists()]
    if missing:
        err("golden-files", str(directory), f"DORY stops with FileNotFoundError: missing {missing[:3]}")


def l2_findings(graph, config) -> list[Finding]:
    """Checker findings from the estimate: warnings for L3 layers, an error where DORY cannot tile at all."""
    out = []
    budget = L2_BYTES - int(config.get("code reserved space", 0))
    for mem in l2_report(graph):
        where = f"{mem.activations} B activations + {mem.weights} B weights vs {budget} B of L2"
        if mem.placement == "impossible":
            out.append(
                Finding("error", "l2-memory", mem.name, f"{where}; DORY cannot tile it and exits 0 without output")
            )
        elif mem.placement != "L2":
            out.append(Finding("warning", "l2-memory", mem.name, f"{where}; DORY tiles it from L3 ({mem.placement})"))
    return out
