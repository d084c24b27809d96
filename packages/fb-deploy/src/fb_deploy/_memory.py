"""L2 memory estimate of a DORY model: which layers fit L2, which need L3 (dory_format.md section 2).

Per fused layer the footprint is its input and output activations (packed at their bit widths), the residual
tensors kept alive across it, and its packed weights with bias and requant constants. The budget is L2 minus
DORY's ``"code reserved space"``. DORY can stream either the weights or the activations of a layer from L3, not
both: then its tiler prints "not yet working" and exits 0 without producing an application.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

L2_BYTES = 512000  # PULP_gvsoc and GAP8 L2 in DORY's HW_description.json


@dataclass(frozen=True)
class LayerMemory:
    name: str
    activations: int  # bytes: inputs + output + live residuals
    weights: int  # bytes: packed weights, bias, requant constants
    placement: str  # "L2" | "L3 weights" | "L3 activations" | "impossible"

    @property
    def total(self) -> int:
        return self.activations + self.weights


def _bytes(shape, bits: int) -> int:
    return math.ceil(int(np.prod(shape)) * bits / 8) if shape else 0


def l2_report(graph, l2_bytes: int = L2_BYTES, code_reserved: int | None = None) -> list[LayerMemory]:
    """Estimate each DORY layer's L2 footprint and placement."""
    reserved = int(graph.config.get("code reserved space", 0)) if code_reserved is None else code_reserved
    budget = l2_bytes - reserved
    rq_bytes = int(graph.config.get("BNRelu_bits", 32)) // 8
    size = {graph.input_name: _bytes(graph.shapes.get(graph.input_name), graph.config.get("input_bits", 8))}
    last_use = {}
    for i, layer in enumerate(graph.layers):
        size[layer.output] = _bytes(layer.out_shape, layer.out_bits)
        for t in layer.inputs:
            last_use[t] = i
    produced_at = {layer.output: i for i, layer in enumerate(graph.layers)}
    produced_at[graph.input_name] = -1
    report = []
    for i, layer in enumerate(graph.layers):
        acts = sum(size.get(t, 0) for t in layer.inputs) + size[layer.output]
        live = sum(
            size[t] for t, p in produced_at.items() if p < i and last_use.get(t, -1) > i and t not in layer.inputs
        )
        acts += live
        weights = 0
        if layer.weight is not None:
            weights += _bytes(np.shape(layer.weight), layer.weight_bits or 8)
        if layer.bias is not None:
            weights += 4 * np.size(layer.bias)
        if layer.mul is not None and layer.kind in ("conv", "fc"):
            weights += 2 * rq_bytes * np.size(layer.mul)
        if acts + weights <= budget:
            placement = "L2"
        elif acts <= budget:
            placement = "L3 weights"
        elif weights <= budget:
            placement = "L3 activations"
        else:
            placement = "impossible"
        report.append(LayerMemory(layer.name, int(acts), int(weights), placement))
    return report


def l2_findings(graph, config) -> list:
    """Checker findings from the estimate: warnings for L3 layers, an error where DORY cannot tile at all."""
    from fb_deploy._checker import Finding

    out = []
    budget = L2_BYTES - int(config.get("code reserved space", 0))
    for mem in l2_report(graph):
        where = f"{mem.name}: {mem.activations} B activations + {mem.weights} B weights vs {budget} B of L2"
        if mem.placement == "impossible":
            out.append(Finding("error", "l2-memory", mem.name, f"{where}; DORY exits 0 without output"))
        elif mem.placement != "L2":
            out.append(Finding("warning", "l2-memory", mem.name, f"{where}; needs {mem.placement} tiling"))
    return out
