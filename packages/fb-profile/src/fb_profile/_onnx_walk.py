"""The walk over an ONNX graph: constants are evaluated, shape arithmetic is set aside, pass-through nodes are
skipped, and every other node goes to its op converter."""

from __future__ import annotations

import numpy as np

from fb_profile import _onnx_fold_ops as fold
from fb_profile import _onnx_layer_ops as layer
from fb_profile._onnx_graph import Graph

SUPPORTED = (
    "Conv, Gemm, MatMul, Add (residual or constant), Relu, Clip, Max/Min with a constant, BatchNormalization, "
    "Mul/Sub/Div by a constant, GlobalAveragePool, AveragePool (global), ReduceMean (over H, W), MaxPool, "
    "Pad (zero, spatial), Transpose (layout), Flatten, Reshape, Squeeze, Identity, Dropout, Softmax (last)"
)
PASS = {"Identity", "Dropout"}
FOLDABLE = ("Cast", "Concat", "Unsqueeze", "Squeeze", "Gather", "Reshape", "Identity", "Transpose", "Slice")
OPS = {
    "Transpose": layer.transpose,
    "Pad": layer.pad,
    "Conv": layer.conv,
    "GlobalAveragePool": layer.global_average_pool,
    "AveragePool": layer.average_pool,
    "ReduceMean": layer.reduce_mean,
    "MaxPool": layer.max_pool,
    "Flatten": layer.flatten,
    "Reshape": layer.reshape,
    "Squeeze": layer.squeeze,
    "Gemm": layer.gemm,
    "MatMul": layer.matmul,
    "Softmax": layer.softmax,
    "BatchNormalization": fold.batch_normalization,
    "Mul": fold.mul,
    "Div": fold.div,
    "Sub": fold.sub,
    "Add": fold.add,
    "Relu": fold.relu,
    "Clip": fold.clip,
    "Max": fold.max_,
    "Min": fold.min_,
}


def walk(g: Graph, classifier: bool = True) -> None:
    """Convert every node of the graph in order; with ``classifier``, check that it ends in the logits."""
    for i, node in enumerate(g.graph.node):
        _convert(g, node, g.where(node, i))
    if classifier:
        _check_classifier(g)


def _convert(g: Graph, node, where: str) -> None:
    op = node.op_type
    if op == "Constant":
        value = g.attrs(node).get("value")
        if value is None:
            raise ValueError(f"{where}: only tensor constants are supported")
        g.consts[node.output[0]] = g.onnx.numpy_helper.to_array(value)
        return
    if node.input and all(t in g.consts for t in node.input if t):
        _fold_constant(g, node, where)  # shape and padding arithmetic of the exporters
        return
    dynamic = [t for t in node.input if t and t not in g.consts]
    if op == "Shape" or (op in FOLDABLE and dynamic and all(t in g.shape_like for t in dynamic)):
        g.shape_like.add(node.output[0])  # batch-size arithmetic of a dynamic-batch Reshape
        return
    if op in PASS:
        g.values[node.output[0]] = g.value(node.input[0], where)
        return
    if op not in OPS:
        raise ValueError(f"{where}: unsupported op; supported: {SUPPORTED}")
    OPS[op](g, node, where)


def _fold_constant(g: Graph, node, where: str) -> None:
    """Evaluate a node whose inputs are all constants (onnx's reference evaluator)."""
    from onnx.reference import ReferenceEvaluator

    try:
        outs = ReferenceEvaluator(node).run(None, {t: g.consts[t] for t in node.input if t})
    except Exception as exc:  # noqa: BLE001 - any evaluator failure is this node's problem
        raise ValueError(f"{where}: cannot evaluate this constant expression ({type(exc).__name__})") from None
    for name, value in zip(node.output, outs):
        g.consts[name] = np.asarray(value)


def _check_classifier(g: Graph) -> None:
    outs = [o.name for o in g.graph.output]
    if len(outs) != 1 or outs[0] not in g.values:
        raise ValueError(f"{g.source}: the graph output must be the classifier's logits")
    last = g.values[outs[0]]
    if not g.layers or last.tensor != g.layers[-1].name or g.layers[-1].lt.op != "linear":
        raise ValueError(f"{g.source}: the graph must end in a linear classifier (Gemm/MatMul)")
