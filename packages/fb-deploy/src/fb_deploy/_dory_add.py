"""How DORY (be3d6dd, PULP targets, QuantLab frontend) runs a residual add: which tensor is which kernel input,
read at which precision, with which requantization attributes.

Read off DORY's sources:

* ``Hardware_targets/PULP/Common/Templates/network.c.t``: the add runs on ``L2_input``, the output of the layer
  executed just before it, and ``bypass_activations``, the branch's other tensor; the layer template receives
  them as ``l2_x`` and ``l2_x2`` (``layer_L2_c_addition_template.c``), i.e. kernel inputs ``pIn1`` and ``pIn2``.
* ``Frontend_frameworks/Quantlab/Parser.py`` (``add_nodes_precision``): the kernel's input types and widths
  (``pulp_nn_add_<x>_<x2>_<y>``) are those of the producers of the ONNX inputs 0 and 1, in that order.
* ``Parser.py`` (``frontend_mapping_to_DORY_nodes``): if ``int(input 0) > int(input 1)`` DORY swaps the
  ``in1_*`` and ``in2_*`` attributes into ``inmul2``/``inmul1``; the template then passes ``inmul2, inadd2,
  inshift2`` as the kernel's ``in1`` parameters (applied to ``pIn1``) and ``inmul1...`` as ``in2``.
* The template DMAs the second input with the first input's byte length (``x_tile_size_nif_byte``), so inputs of
  different widths are not loaded correctly.

A model means what its ONNX graph says (input k requantized by ``in{k+1}_*``) only if DORY's reading agrees.
"""

from __future__ import annotations

from dataclasses import dataclass

from fb_deploy._dory_graph import DoryGraph, DoryLayer


@dataclass(frozen=True)
class AddReading:
    """The add as DORY's kernel computes it: ``pIn1``/``pIn2`` tensors, their stored and read precisions, and the
    attribute prefix (``in1``/``in2``) whose requantization each one gets."""

    tensors: tuple[str, str]
    stored: tuple[tuple[int, bool], tuple[int, bool]]
    read: tuple[tuple[int, bool], tuple[int, bool]]
    params: tuple[str, str]

    def problems(self, layer: DoryLayer) -> list[tuple[str, str]]:
        """(rule, message) where DORY's reading differs from the ONNX graph's meaning (empty: it computes what the
        graph says). ``residual-add-precision``: DORY cannot run it; ``residual-add-order``: it runs, wrongly."""
        out = []
        if layer.in_bits[0] != layer.in_bits[1]:
            msg = (
                f"inputs of {layer.in_bits[0]} and {layer.in_bits[1]} bits: DORY copies the second input with the "
                "first one's byte length; give both inputs one precision"
            )
            out.append(("residual-add-precision", msg))
        for tensor, stored, read, params in zip(self.tensors, self.stored, self.read, self.params):
            k = layer.inputs.index(tensor)
            if stored != read and stored[0] == read[0]:
                msg = (
                    f"DORY's kernel reads tensor {tensor} as {_type(read)} but it is {_type(stored)}: the output of "
                    "the layer before the add must be input 0"
                )
                out.append(("residual-add-order", msg))
            if params != f"in{k + 1}":
                msg = (
                    f"DORY requantizes tensor {tensor} (input {k}) with {params}_*: it swaps the in1/in2 attributes "
                    "when int(input 0) > int(input 1)"
                )
                out.append(("residual-add-order", msg))
        return out


def _type(prec: tuple[int, bool]) -> str:
    return f"{'int' if prec[1] else 'uint'}{prec[0]}"


def add_reading(graph: DoryGraph, layer: DoryLayer) -> AddReading | str:
    """DORY's reading of residual add ``layer``, or a one-line reason why DORY's order cannot be predicted."""
    raw = [t for t in layer.node.input if t not in graph.consts]
    if len(raw) != 2 or not all(t.isdigit() for t in raw):
        return f"inputs {raw}: DORY needs two integer-named tensors"
    if layer.inputs[0] == layer.inputs[1]:
        return f"adds tensor {layer.inputs[0]} to itself: DORY's network.c saves no branch tensor for it and hangs"
    prev = graph.layers[layer.index - 1].output if layer.index > 0 else None
    if prev not in layer.inputs:
        return (
            f"neither input ({', '.join(layer.inputs)}) is the output of the layer before it ({prev}); DORY's "
            "branch switching is not modelled"
        )
    first = prev
    second = layer.inputs[1] if layer.inputs[0] == prev else layer.inputs[0]
    prec = {t: (b, s) for t, b, s in zip(layer.inputs, layer.in_bits, layer.in_signed)}
    read = ((layer.in_bits[0], layer.in_signed[0]), (layer.in_bits[1], layer.in_signed[1]))
    swapped = int(raw[0]) > int(raw[1])
    params = ("in1", "in2") if swapped else ("in2", "in1")
    return AddReading((first, second), (prec[first], prec[second]), read, params)
