"""Random-weight QuantizedNetworks for any topology and config: test networks and one-layer profiling nets.

The fake-quant forward below follows the artifact conventions of ``fb_schema._quantized_network`` (round half
to even, one activation grid per tensor, calibrated on the batch; the classifier outputs its accumulator).
"""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from fb_deploy._reference import conv_float, window_sum
from fb_schema import NetConfig, QuantizedNetwork, grid, max_abs, write_atomic
from fb_schema.topologies import INPUT, Topology, TopologyLayer


def _quant(x: np.ndarray, scale, bits: int, signed: bool) -> np.ndarray:
    lo, hi = grid(bits, signed)
    return np.clip(np.round(x / scale), lo, hi) * scale


def tensor_bits(topology: Topology, config: NetConfig) -> dict[str, int]:
    """Each layer's output width: its consumer's b_in (a conv consumer's when there are several); 32 at the end.

    A tensor read only by a residual add takes the width of the add's other input when a conv sets that one:
    DORY's add needs both inputs at one precision (fb-search's fake-quant model does the same).
    """
    bits = {}
    for layer in topology.layers:
        consumers = topology.consumers(layer.name)
        if not consumers:
            bits[layer.name] = 32
            continue
        conv = [c for c in consumers if c.layer_type.configurable]
        bits[layer.name] = config.layer((conv or consumers)[0].name).b_in
        adds = [c for c in consumers if c.op == "add"]
        if not conv and adds:
            others = [t for t in adds[0].inputs if t != layer.name]
            partner = [c for t in others for c in topology.consumers(t) if c.layer_type.configurable]
            if partner:
                bits[layer.name] = config.layer(partner[0].name).b_in
    return bits


def random_quantized_network(
    topology: Topology,
    config: NetConfig,
    seed: int = 0,
    path: str | os.PathLike | None = None,
    n_ref: int = 2,
    n_calib: int = 8,
) -> QuantizedNetwork:
    """Write a QuantizedNetwork with random weights and calibrated grids to ``path`` (+ ``.npz``) and load it.

    Args:
        topology: the network (``fb_schema.topologies``).
        config: per-layer (b_in, b_wt); each tensor is produced at its consumer's b_in.
        seed: random seed for weights, BN statistics and images.
        path: the artifact's JSON path (its ``.npz`` goes beside it); default: a new temporary directory.
        n_ref: reference samples stored with their fake-quant logits.
        n_calib: images used to calibrate BN statistics and activation grids.

    Example:
        >>> from fb_schema import NetConfig
        >>> from fb_schema.topologies import digitsnet
        >>> qn = random_quantized_network(digitsnet(), NetConfig.homogeneous(digitsnet(), 4, 4), seed=0)
        >>> qn.network
        'digitsnet'
    """
    rng = np.random.default_rng(seed)
    if path is None:  # kept after return: the artifact refers to its .npz
        path = Path(tempfile.mkdtemp(prefix="fb-deploy-random-")) / f"{topology.name}.json"
    path = Path(path)
    out_bits = tensor_bits(topology, config)
    h, w, c = topology.input_shape
    images = np.round(rng.uniform(0, 1, (max(n_calib, n_ref), h, w, c)) * 255) / 255
    arrays: dict[str, np.ndarray] = {"ref_inputs": images[:n_ref].astype(np.float32)}
    values, nodes, tensors = {INPUT: images}, [], {}
    for layer in topology.layers:
        lt, name = layer.layer_type, layer.name
        node = {"name": name, "op": lt.op, "inputs": list(layer.inputs), "output": name, "layer_type": lt.key}
        node |= {"weight": None, "bias": None, "bn": None, "w_quant": None}
        x = [values[t] for t in layer.inputs]
        if lt.configurable:
            y = _weighted(layer, x[0], config.layer(name).b_wt, out_bits[name] == 32, rng, arrays, node)
        elif lt.op == "add":
            y = x[0] + x[1]
        else:
            y = window_sum(x[0], lt.kernel, lt.stride) / (lt.kernel[0] * lt.kernel[1])
        values[name] = _output_grid(layer, y, out_bits[name], tensors)
        nodes.append(node)
    arrays["ref_logits"] = values[topology.output][:n_ref].astype(np.float32)
    doc = {
        "schema": "freebits/quantized-network/v1",
        "network": topology.name,
        "config_sha256": config.sha256(),
        "input": {"tensor": INPUT, "shape_nhwc": [1, h, w, c], "bits": 8, "signed": False, "scale": 1 / 255},
        "nodes": nodes,
        "tensors": tensors,
        "reference": {"inputs": "ref_inputs", "logits": "ref_logits"},
    }
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(QuantizedNetwork.npz_for(path), buf.getvalue())
    QuantizedNetwork(doc, QuantizedNetwork.npz_for(path)).save(path)
    return QuantizedNetwork.load(path)


def _weighted(layer: TopologyLayer, x: np.ndarray, b_wt: int, last: bool, rng: np.random.Generator,
              arrays: dict[str, np.ndarray], node: dict[str, Any]) -> np.ndarray:  # fmt: skip
    """A conv/linear with random weights at ``b_wt``: a bias if it is the ``last`` layer, else a batch norm
    calibrated on ``x``. Its arrays go into ``arrays``, their keys into ``node``; returns its float output."""
    lt, name = layer.layer_type, layer.name
    fan_in = lt.kernel[0] * lt.kernel[1] * lt.in_ch // lt.groups
    wf = rng.normal(0, 1 / np.sqrt(fan_in), lt.weight_shape_hwio)
    w_scale = np.abs(wf).reshape(-1, lt.out_ch).max(0) / 2 ** (b_wt - 1)
    arrays[f"{name}.w"], arrays[f"{name}.w_scale"] = wf.astype(np.float32), w_scale.astype(np.float32)
    node["weight"] = f"{name}.w"
    node["w_quant"] = {"bits": b_wt, "scale": f"{name}.w_scale", "per_channel": True}
    wq = _quant(arrays[f"{name}.w"].astype(np.float64), arrays[f"{name}.w_scale"].astype(np.float64), b_wt, True)
    y = x.reshape(len(x), -1) @ wq if lt.op == "linear" else conv_float(x, wq, lt)
    if last:
        arrays[f"{name}.b"] = rng.normal(0, 0.1, lt.out_ch).astype(np.float32)
        node["bias"] = f"{name}.b"
        return y + arrays[f"{name}.b"]
    axes = tuple(range(y.ndim - 1))
    stats = {
        "gamma": rng.uniform(0.5, 1.5, lt.out_ch),
        "beta": rng.normal(0.5, 0.5, lt.out_ch),
        "mean": y.mean(axes),
        "var": y.var(axes) + 1e-3,
    }
    for k, v in stats.items():
        arrays[f"{name}.bn.{k}"] = v.astype(np.float32)
    node["bn"] = {k: f"{name}.bn.{k}" for k in stats} | {"eps": 1e-5}
    bn = {k: arrays[f"{name}.bn.{k}"].astype(np.float64) for k in stats}
    return (y - bn["mean"]) / np.sqrt(bn["var"] + 1e-5) * bn["gamma"] + bn["beta"]


def _output_grid(layer: TopologyLayer, y: np.ndarray, bits: int, tensors: dict[str, dict]) -> np.ndarray:
    """Record the grid of a layer's output in ``tensors`` (calibrated on ``y``) and return ``y`` on it; the
    32-bit classifier output keeps its accumulator at the scale of its input."""
    name = layer.name
    if bits == 32:
        src = layer.inputs[0]
        tensors[name] = {"bits": 32, "signed": True, "scale": 1 / 255 if src == INPUT else tensors[src]["scale"]}
        return y
    if layer.act == "relu6":
        y = np.clip(y, 0, 6)
    signed = bool((y < 0).any())
    scale = max(float(np.abs(y).max()), 1e-6) / max_abs(bits, signed)
    tensors[name] = {"bits": bits, "signed": signed, "scale": scale}
    return _quant(y, scale, bits, signed)
