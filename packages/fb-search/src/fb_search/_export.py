"""Write and read the ``QuantizedNetwork`` artifact (``freebits/quantized-network/v1``, fb_schema).

Written from a ``tqt`` (or ``fixed``) model: HWIO float weights, per-channel weight steps, raw BN statistics,
each tensor's grid (bits, signedness, step), the 8-bit input (its step and signedness from the topology's input
range: 1/255 for [0, 1]), the topology itself and a few reference inputs with the model's fake-quant logits.
The classifier output is listed as a 32-bit signed tensor with its input's step.
Read back into a ``tqt`` model whose thresholds reproduce the stored grids exactly.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from flax import nnx

from fb_schema import NetConfig, Precision, QuantizedNetwork, max_abs, write_atomic
from fb_schema.topologies import INPUT, Topology, get_topology, topology_from_json, topology_to_json
from fb_search._model import QNet, to_netconfig
from fb_search._train import predict
from fb_search.quant import FixedQuant, TQTQuant

INPUT_SCALE = 1.0 / 255.0


def export_quantized_network(
    model: QNet, topology: Topology, config: NetConfig, ref_inputs: np.ndarray, json_path: str | os.PathLike
) -> Path:
    """Write ``json_path`` and its ``.npz``; returns the JSON path."""
    if model.mode not in ("tqt", "fixed"):
        raise ValueError(f"export: expected a tqt or fixed model, got mode {model.mode!r}")
    arrays: dict[str, np.ndarray] = {}
    nodes, tensors = [], {}
    for layer in topology.layers:
        lt, mod = layer.layer_type, model.layers[layer.name]
        node = {"name": layer.name, "op": lt.op, "inputs": list(layer.inputs), "output": layer.name}
        node |= {"layer_type": lt.key, "weight": None, "bias": None, "bn": None, "w_quant": None}
        if lt.configurable:
            w = np.asarray(mod.kernel[...], np.float32)
            arrays[f"{layer.name}.w"] = w
            arrays[f"{layer.name}.w_scale"] = np.asarray(mod.w_q.scale(w), np.float32).reshape(lt.out_ch)
            node["weight"] = f"{layer.name}.w"
            node["w_quant"] = {"bits": mod.w_q.bits, "scale": f"{layer.name}.w_scale", "per_channel": True}
            if lt.op == "linear" or mod.bn is None:
                arrays[f"{layer.name}.b"] = np.asarray(mod.bias[...], np.float32)
                node["bias"] = f"{layer.name}.b"
            else:
                bn = mod.bn
                for k, v in (("gamma", bn.scale), ("beta", bn.bias), ("mean", bn.mean), ("var", bn.var)):
                    arrays[f"{layer.name}.bn.{k}"] = np.asarray(v[...], np.float32)
                node["bn"] = {k: f"{layer.name}.bn.{k}" for k in ("gamma", "beta", "mean", "var")}
                node["bn"]["eps"] = float(bn.epsilon)
        q = model.quantizer_of(layer.name)
        if q is None:  # the classifier's accumulator
            tensors[layer.name] = {"bits": 32, "signed": True, "scale": tensors[layer.inputs[0]]["scale"]}
        else:
            tensors[layer.name] = {"bits": q.bits, "signed": q.signed, "scale": float(q.scale())}
        nodes.append(node)
    arrays["ref_inputs"] = np.asarray(ref_inputs, np.float32)
    arrays["ref_logits"] = predict(model, arrays["ref_inputs"]).astype(np.float32)
    h, w, c = topology.input_shape
    in_q = model.quantizer_of(INPUT)
    in_spec = {"tensor": INPUT, "shape_nhwc": [1, h, w, c], "bits": 8, "signed": bool(in_q.signed)}
    scale = topology.input_threshold / (128 if in_q.signed else 255)  # float64, as fb-deploy computes it
    in_spec |= {"scale": scale, "range": [float(v) for v in topology.input_range]}
    doc = {
        "schema": "freebits/quantized-network/v1",
        "network": topology.name,
        "config_sha256": config.sha256(),
        "input": in_spec,
        "nodes": nodes,
        "tensors": tensors,
        "reference": {"inputs": "ref_inputs", "logits": "ref_logits"},
        "topology": topology_to_json(topology),
    }
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    write_atomic(QuantizedNetwork.npz_for(json_path), buf.getvalue())
    QuantizedNetwork(doc, QuantizedNetwork.npz_for(json_path)).save(json_path)
    return json_path


def _threshold(scale: float | np.ndarray, bits: int, signed: bool) -> np.ndarray:
    return np.asarray(scale, np.float64) * max_abs(bits, signed)


def load_quantized_network(
    json_path: str | os.PathLike, topology: Topology | None = None, dw_impl: str = "taps"
) -> tuple[QNet, Topology, NetConfig]:
    """A ``tqt`` model reproducing a QuantizedNetwork artifact (thresholds from the stored steps).

    Raises ValueError (one line) if the artifact does not fit the topology.
    """
    qn = QuantizedNetwork.load(json_path)
    src = f"{json_path}"
    if topology is None and "topology" in qn.doc:
        topology = topology_from_json(qn.doc["topology"], f"{src}: topology")
    topology = topology or get_topology(qn.network)
    if [n["name"] for n in qn.nodes] != [layer.name for layer in topology.layers]:
        raise ValueError(f"{src}: nodes do not match the layers of {topology.name}")
    want = topology.input_threshold / (128 if topology.input_signed else 255)
    if abs(qn.input["scale"] - want) > 1e-9 * want or qn.input["bits"] != 8:
        raise ValueError(f"{src}: input: expected 8 bits with step {want:g} (the topology's input range)")
    nodes = {n["name"]: n for n in qn.nodes}
    precisions = {}
    for layer in topology.layers:
        if layer.layer_type.configurable:
            b_in = qn.input["bits"] if layer.inputs[0] == INPUT else qn.tensors[layer.inputs[0]]["bits"]
            precisions[layer.name] = Precision(b_in, nodes[layer.name]["w_quant"]["bits"])
        else:
            precisions[layer.name] = Precision(8, None)
    config = to_netconfig(topology, precisions, {"method": "manual", "parent": None}, {})
    model = QNet(topology, "tqt", config, dw_impl=dw_impl, rngs=nnx.Rngs(0))
    with np.load(QuantizedNetwork.npz_for(json_path)) as npz:
        for layer in topology.layers:
            node, mod = nodes[layer.name], model.layers[layer.name]
            if layer.layer_type.configurable:
                mod.kernel[...] = npz[node["weight"]]
                wq = node["w_quant"]
                mod.w_q.log_t[...] = np.log2(_threshold(npz[wq["scale"]], wq["bits"], True)).astype(np.float32)
                if node["bias"] is not None:
                    mod.bias[...] = npz[node["bias"]]
                if node["bn"] is not None:
                    bn = node["bn"]
                    mod.bn.scale[...], mod.bn.bias[...] = npz[bn["gamma"]], npz[bn["beta"]]
                    mod.bn.mean[...], mod.bn.var[...] = npz[bn["mean"]], npz[bn["var"]]
            q = model.quantizer_of(layer.name)
            if q is None:
                continue
            spec = qn.tensors[layer.name]
            if spec["signed"] != q.signed or spec["bits"] != q.bits:
                raise ValueError(
                    f"{src}: tensors.{layer.name}: expected bits {q.bits} signed {q.signed}, "
                    f"got bits {spec['bits']} signed {spec['signed']}"
                )
            if isinstance(q, TQTQuant):
                q.log_t[...] = np.float32(np.log2(_threshold(spec["scale"], spec["bits"], spec["signed"])))
            elif isinstance(q, FixedQuant):
                q.t[...] = np.float32(_threshold(spec["scale"], spec["bits"], spec["signed"]))
    model.eval()
    return model, topology, config
