"""L2 memory estimate of a DORY model: which layers fit L2, which DORY will tile from L3, which it cannot run.

A light emulation of DORY's L3-L2 tiler (``Common/Tiler/tiler_{conv2d,pool2d,add}.py`` at be3d6dd): a layer
stays in L2 when input + output + weights + bias + requant constants fit L2 minus ``"code reserved space"`` and
its input is not in L3. Otherwise DORY tries, in order, to stream the weights (double-buffered, whole
activations), to tile the output (which then lives in L3 and makes the next layer read from L3), or both. A
convolution that would need its weights *and* its activations tiled, and an Add that does not fit, make DORY
print "... Exiting..." and exit 0 without producing an application.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

L2_BYTES = 512000  # PULP_gvsoc and GAP8 L2 in DORY's HW_description.json


@dataclass(frozen=True)
class LayerMemory:
    name: str
    activations: int  # bytes: input (DORY counts the first input) + output
    weights: int  # bytes: packed weights, bias, requant constants
    placement: str  # L2 | L3 weights | L3 input | L3 output | L3 input+output | impossible
    input_l3: bool
    output_l3: bool

    @property
    def total(self) -> int:
        return self.activations + self.weights


def _bytes(shape, bits: int) -> int:
    return math.ceil(int(np.prod(shape)) * bits / 8) if shape else 0


def _conv_placement(in_b, out_b, w_b, out_ch, rows_in, rows_out, kh, input_l3, budget):
    """(placement, output in L3) following the four iterations of DORY's conv L3 tiler."""
    per_n = w_b / max(out_ch, 1)
    row_in, row_out = in_b / max(rows_in, 1), out_b / max(rows_out, 1)
    if not input_l3:
        if in_b + out_b + w_b <= budget:
            return "L2", False
        if in_b + out_b + 2 * per_n <= budget:  # weights streamed, activations whole
            return "L3 weights", False
        if in_b + 2 * row_out + w_b <= budget:  # output tiled by rows into L3
            return "L3 output", True
        return "impossible", True
    min_in = 2 * row_in * kh
    if min_in + out_b + w_b <= budget:
        return "L3 input", False
    if min_in + 2 * row_out + w_b <= budget:
        return "L3 input+output", True
    return "impossible", True


def l2_report(graph, l2_bytes: int = L2_BYTES, code_reserved: int | None = None) -> list[LayerMemory]:
    """Estimate each DORY layer's L2 footprint and where DORY will place it."""
    reserved = int(graph.config.get("code reserved space", 0)) if code_reserved is None else code_reserved
    budget = l2_bytes - reserved
    rq_bytes = int(graph.config.get("BNRelu_bits", 32)) // 8
    report: list[LayerMemory] = []
    prev_out_l3 = False  # DORY looks at the previous layer in order, not at the producer
    for layer in graph.layers:
        in_shape = layer.in_shape or ()
        in_b = _bytes(in_shape, layer.in_bits[0] if layer.in_bits else 8)
        out_b = _bytes(layer.out_shape, layer.out_bits)
        w_b = 0
        if layer.weight is not None:
            w_b += _bytes(np.shape(layer.weight), layer.weight_bits or 8)
        if layer.bias is not None:
            w_b += 4 * np.size(layer.bias)
        if layer.mul is not None and layer.kind in ("conv", "fc"):
            w_b += 2 * rq_bytes * np.size(layer.mul)
        rows_in = in_shape[1] if len(in_shape) == 3 else 1
        rows_out = layer.out_shape[1] if len(layer.out_shape) == 3 else 1
        out_ch = layer.out_shape[0] if layer.out_shape else 1
        if layer.kind == "add":
            fits = in_b + out_b <= budget
            placement, out_l3 = ("L2", False) if fits else ("impossible", True)
        elif layer.kind in ("pool", "maxpool"):
            kh = int(layer.attrs.get("kernel_shape", [rows_in])[0]) if layer.node.op_type != "GlobalAveragePool" else 1
            placement, out_l3 = _conv_placement(in_b, out_b, 0, out_ch, rows_in, rows_out, kh, prev_out_l3, budget)
            if placement == "L3 weights":
                placement = "L2"
        else:
            kh = int(layer.attrs.get("kernel_shape", [1])[0]) if layer.kind == "conv" else 1
            placement, out_l3 = _conv_placement(in_b, out_b, w_b, out_ch, rows_in, rows_out, kh, prev_out_l3, budget)
        report.append(LayerMemory(layer.name, int(in_b + out_b), int(w_b), placement, prev_out_l3, out_l3))
        prev_out_l3 = out_l3
    return report
