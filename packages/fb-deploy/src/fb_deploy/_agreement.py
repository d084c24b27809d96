"""Layer-local agreement between the artifact's fake-quant model and the integer network.

End-to-end logit differences mix two things: what integerization changes in one layer, and how a deep network
amplifies one-step changes downstream (strongly so for random weights). Here every integer layer runs on the
fake-quant model's own (integer) inputs and is compared with the fake-quant output of that layer, following
the artifact conventions of ``fb_schema._quantized_network`` (round half to even, per-tensor grids). Expected:
convolutions and pooling differ only within a hair of a rounding tie; DORY's residual adder (8-bit intermediate
per input) can differ by one step.
"""

from __future__ import annotations

import numpy as np

from fb_deploy._integer_network import IntegerNetwork
from fb_deploy._reference import conv_float, run_layer, window_sum
from fb_schema import LayerType, QuantizedNetwork, grid


def _on_grid(x: np.ndarray, scale: float, bits: int, signed: bool) -> np.ndarray:
    return np.clip(np.round(x / scale), *grid(bits, signed))


def fake_quant_layer(node: dict, xs: list[np.ndarray], arrays: dict[str, np.ndarray]) -> np.ndarray:
    """One artifact node in real arithmetic (float64) on real inputs, before its output quantization."""
    lt = LayerType.from_key(node["layer_type"])
    if lt.op == "add":
        return xs[0] + xs[1]
    if lt.op == "avgpool":
        return window_sum(xs[0], lt.kernel, lt.stride) / (lt.kernel[0] * lt.kernel[1])
    wq = node["w_quant"]
    s_w = arrays[wq["scale"]]
    w = _on_grid(arrays[node["weight"]], s_w, wq["bits"], True) * s_w
    y = xs[0].reshape(len(xs[0]), -1) @ w if lt.op == "linear" else conv_float(xs[0], w, lt)
    if node["bias"]:
        y = y + arrays[node["bias"]]
    if node["bn"]:
        bn = node["bn"]
        g = arrays[bn["gamma"]] / np.sqrt(arrays[bn["var"]] + bn["eps"])
        y = (y - arrays[bn["mean"]]) * g + arrays[bn["beta"]]
    return y


def layer_agreement(qn: QuantizedNetwork, int_net: IntegerNetwork, x_real_nhwc: np.ndarray | None = None) -> list[dict]:
    """Per layer: how many integer outputs differ from the fake-quant ones when both see the same inputs.

    Args:
        qn: the artifact the integer network was made from.
        int_net: ``integerize(qn)``.
        x_real_nhwc: real images in [0, 1]; default: the artifact's reference inputs.

    Returns:
        ``[{"layer", "values", "mismatches", "max_steps"}]`` (the int32 classifier is compared in LSBs too).
    """
    with np.load(qn.npz_path) as npz:
        arrays = {k: npz[k].astype(np.float64) for k in npz.files}
    x = arrays[qn.doc["reference"]["inputs"]] if x_real_nhwc is None else np.asarray(x_real_nhwc, np.float64)
    specs = {qn.input["tensor"]: qn.input, **qn.tensors}
    ints = {qn.input["tensor"]: int_net.quantize_input(x)}
    out = []
    for node, layer in zip(qn.nodes, int_net.layers):
        xs = [ints[t] * float(specs[t]["scale"]) for t in node["inputs"]]
        y = fake_quant_layer(node, xs, arrays)
        spec = specs[node["output"]]
        if spec["bits"] == 32:
            expected = np.rint(y / int_net.logit_scale)  # the classifier's accumulator, in its own LSBs
        else:
            expected = _on_grid(y, float(spec["scale"]), spec["bits"], spec["signed"])
        got = run_layer(layer, [ints[t] for t in node["inputs"]])
        diff = np.abs(got - expected)
        out.append(
            {
                "layer": node["name"],
                "values": int(diff.size),
                "mismatches": int((diff > 0).sum()),
                "max_steps": int(diff.max(initial=0)),
            }
        )
        ints[node["output"]] = expected.astype(np.int64)
    return out
