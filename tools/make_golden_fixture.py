"""Regenerate tests/fixtures/golden_tinynet.{json,npz}: a QuantizedNetwork of the built-in ``tinynet``.

The fixture is the contract test between producers (fb-search writes this shape) and consumers (fb-deploy reads
it). Weights, BN statistics and inputs are random (seeded); the reference logits come from the plain numpy
fake-quant forward below, using the grids documented in ``fb_schema._quantized_network`` and the residual adder of
``fb_schema.residual_add_step``.

    .venv/bin/python tools/make_golden_fixture.py
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from fb_schema import ADDER_BITS, NetConfig, Precision, QuantizedNetwork, grid, max_abs, residual_add_step, write_atomic
from fb_schema.topologies import INPUT, tinynet

OUT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "golden_tinynet.json"
BITS = {"conv0": (8, 8), "dw1": (4, 4), "fc": (4, 4)}  # (b_in, b_wt)


def quant(x, scale, bits, signed):
    lo, hi = grid(bits, signed)
    return np.clip(np.round(x / scale), lo, hi) * scale


def conv_nhwc(x, w, stride, pad, groups):
    """Direct convolution, x (N,H,W,C), w HWIO (I = C/groups)."""
    t, l, b, r = pad
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw, ci, co = w.shape
    n, h, wd, _ = x.shape
    oh, ow = (h - kh) // stride[0] + 1, (wd - kw) // stride[1] + 1
    out = np.zeros((n, oh, ow, co))
    per_group = co // groups
    for g in range(groups):
        xs = x[..., g * ci : (g + 1) * ci]
        ws = w[..., g * per_group : (g + 1) * per_group]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1], :]
                out[..., g * per_group : (g + 1) * per_group] += patch @ ws[i, j]
    return out


def main() -> None:
    rng = np.random.default_rng(0)
    topo = tinynet()
    config = NetConfig.homogeneous(topo, 8, 8).with_precisions({name: Precision(*b) for name, b in BITS.items()})
    # Output precision of a tensor = b_in of its (conv) consumer; a tensor read only by the add takes the bits of
    # the add's other input (DORY's add needs both at one precision); the pool reads 8 bits.
    b_skip = config.layer("dw1").b_in
    out_bits = {"conv0": b_skip, "dw1": b_skip, "add1": 8, "pool": config.layer("fc").b_in, "fc": 32}
    arrays: dict[str, np.ndarray] = {}
    inputs = np.round(rng.uniform(0, 1, (4, 8, 8, 1)) * 255) / 255
    arrays["ref_inputs"] = inputs.astype(np.float32)
    nodes, tensors, values = [], {}, {INPUT: inputs}
    for layer in topo.layers:
        node = _node(layer)
        x = [values[t] for t in layer.inputs]
        if layer.layer_type.configurable:
            y = _weighted(layer, x[0], config.layer(layer.name).b_wt, rng, arrays, node)
        elif layer.layer_type.op == "add":  # the deployed adder: each input on the common 8-bit step first
            specs = [(tensors[t]["bits"], tensors[t]["signed"], tensors[t]["scale"]) for t in layer.inputs]
            s_c = residual_add_step(specs)
            y = sum(np.clip(np.floor(v / s_c + 0.5), *grid(ADDER_BITS, sp[1])) * s_c for v, sp in zip(x, specs))
        else:
            y = x[0].mean(axis=(1, 2), keepdims=True)
        values[layer.name] = _quantize_output(layer, y, out_bits[layer.name], tensors)
        nodes.append(node)
    arrays["ref_logits"] = values[topo.output].astype(np.float32)
    doc = {
        "schema": "freebits/quantized-network/v1",
        "network": topo.name,
        "config_sha256": config.sha256(),
        "input": {"tensor": INPUT, "shape_nhwc": [1, 8, 8, 1], "bits": 8, "signed": False, "scale": 1 / 255},
        "nodes": nodes,
        "tensors": tensors,
        "reference": {"inputs": "ref_inputs", "logits": "ref_logits"},
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(QuantizedNetwork.npz_for(OUT), buf.getvalue())
    QuantizedNetwork(doc, QuantizedNetwork.npz_for(OUT)).save(OUT)
    config.save(OUT.with_name("golden_tinynet.config.json"))
    print(f"wrote {OUT} and its .npz ({len(arrays)} arrays)")


def _node(layer) -> dict:
    """The layer's node, without parameters (a weighted layer fills them in)."""
    lt = layer.layer_type
    return {
        "name": layer.name,
        "op": lt.op,
        "inputs": list(layer.inputs),
        "output": layer.name,
        "layer_type": lt.key,
        "weight": None,
        "bias": None,
        "bn": None,
        "w_quant": None,
    }


def _weighted(layer, x, b_wt: int, rng, arrays: dict[str, np.ndarray], node: dict) -> np.ndarray:
    """A conv (+ BN) or linear layer with random weights quantized per channel: its float output."""
    lt = layer.layer_type
    w = rng.normal(0, 0.5, lt.weight_shape_hwio)
    w_scale = np.abs(w).reshape(-1, lt.out_ch).max(0) / 2 ** (b_wt - 1)
    arrays[f"{layer.name}.w"] = w.astype(np.float32)
    arrays[f"{layer.name}.w_scale"] = w_scale.astype(np.float32)
    node["weight"] = f"{layer.name}.w"
    node["w_quant"] = {"bits": b_wt, "scale": f"{layer.name}.w_scale", "per_channel": True}
    wq = quant(w, w_scale, b_wt, True)
    if lt.op == "linear":
        arrays[f"{layer.name}.b"] = rng.normal(0, 0.1, lt.out_ch).astype(np.float32)
        node["bias"] = f"{layer.name}.b"
        return x.reshape(len(x), -1) @ wq + arrays[f"{layer.name}.b"]
    y = conv_nhwc(x, wq, lt.stride, lt.padding, lt.groups)
    bn = {
        "gamma": rng.uniform(0.5, 1.5, lt.out_ch),
        "beta": rng.normal(0.2, 0.1, lt.out_ch),
        "mean": y.mean((0, 1, 2)),
        "var": y.var((0, 1, 2)) + 0.01,
    }
    for k, v in bn.items():
        arrays[f"{layer.name}.bn.{k}"] = v.astype(np.float32)
    node["bn"] = {k: f"{layer.name}.bn.{k}" for k in bn} | {"eps": 1e-5}
    bn32 = {k: arrays[f"{layer.name}.bn.{k}"].astype(np.float64) for k in bn}
    return (y - bn32["mean"]) / np.sqrt(bn32["var"] + 1e-5) * bn32["gamma"] + bn32["beta"]


def _quantize_output(layer, y: np.ndarray, bits: int, tensors: dict) -> np.ndarray:
    """Record the layer's output tensor (bits, sign, scale from its range) and return ``y`` on that grid; the
    32-bit logits keep their input's scale and are not rounded."""
    if bits == 32:
        tensors[layer.name] = {"bits": 32, "signed": True, "scale": tensors[layer.inputs[0]]["scale"]}
        return y
    signed = layer.act == "none" and bool((y < 0).any())
    if layer.act == "relu6":
        y = np.clip(y, 0, 6)
    scale = float(np.abs(y).max()) / max_abs(bits, signed)
    tensors[layer.name] = {"bits": bits, "signed": signed, "scale": scale}
    return quant(y, scale, bits, signed)


if __name__ == "__main__":
    main()
