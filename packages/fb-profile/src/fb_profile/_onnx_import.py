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

The work is split by concern: ``_onnx_graph`` holds the conversion state, ``_onnx_walk`` visits the nodes,
``_onnx_layer_ops`` and ``_onnx_fold_ops`` convert them, ``_onnx_checks`` checks attributes and shapes; this
module reads the model and assembles the topology and weights.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fb_profile._onnx_graph import Graph, Layer, onnx_module
from fb_profile._onnx_walk import walk
from fb_schema import LayerType
from fb_schema.topologies import Topology, TopologyLayer


@dataclass
class ImportedNetwork:
    """The result of :func:`import_onnx`: the topology, float weights per layer and ONNX node names per layer."""

    topology: Topology
    weights: dict[str, dict[str, Any]]  # layer -> {"kernel", "bias", "bn": {gamma, beta, mean, var}}
    nodes: dict[str, str]  # layer -> ONNX node name


def load_onnx(model: Any):
    """A ModelProto from a path (external ``.onnx.data`` weights included) or a ModelProto."""
    onnx = onnx_module()
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
    g = Graph(proto, source)
    walk(g)
    if name is None:
        name = Path(source).stem if source != "<model>" else (proto.graph.name or "imported")
    return _result(g, _slug(name), input_range)


def onnx_layers(model: Any) -> list[tuple[str, LayerType]]:
    """(layer name, LayerType) of every layer of an ONNX model, as :func:`import_onnx` converts it (a model that
    does not end in a classifier is accepted here: latency needs only the layers)."""
    proto, source = load_onnx(model)
    g = Graph(proto, source)
    walk(g, classifier=False)
    if not g.layers:
        raise ValueError(f"{source}: no Conv, Gemm/MatMul, Add or pooling node found")
    return [(layer.name, layer.lt) for layer in g.layers]


def _slug(name: str) -> str:
    out = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
    return out or "imported"


def _rename_classifier(g: Graph) -> None:
    """A network with one classifier names it ``fc`` (and its one average pool ``pool``), as fb-search does."""
    fcs = [layer for layer in g.layers if layer.lt.op == "linear"]
    if len(fcs) != 1:
        return
    rename = {fcs[0].name: "fc"}
    pools = [layer for layer in g.layers if layer.lt.op == "avgpool"]
    if len(pools) == 1:
        rename[pools[0].name] = "pool"
    for layer in g.layers:
        layer.inputs = tuple(rename.get(t, t) for t in layer.inputs)
        g.node_of[rename.get(layer.name, layer.name)] = g.node_of.pop(layer.name)
        layer.name = rename.get(layer.name, layer.name)


def _result(g: Graph, name: str, input_range) -> ImportedNetwork:
    _rename_classifier(g)
    topo_layers, weights = [], {}
    for layer in g.layers:
        configurable = layer.lt.configurable
        if configurable:
            weights[layer.name] = _finish(layer)
        has_bias = configurable and layer.bn is None
        topo_layers.append(TopologyLayer(layer.name, layer.lt, layer.inputs, layer.act, has_bias))
    h, w, c = g.input_hwc()
    try:
        topo = Topology(name, (h, w, c), topo_layers[-1].layer_type.out_ch, tuple(topo_layers),
                        {"source": Path(g.source).name}, g.in_layout or "nchw",
                        tuple(float(x) for x in input_range))  # fmt: skip
    except ValueError as exc:
        raise ValueError(f"{g.source}: {exc}") from None
    return ImportedNetwork(topo, weights, dict(g.node_of))


def _finish(layer: Layer) -> dict[str, Any]:
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
