"""QuantizedNetwork (``freebits/quantized-network/v1``): the trained network handed from fb-search to fb-deploy.

The JSON describes the graph, precisions and quantization grids; float tensors live in a side ``.npz`` with the
same stem (``net.json`` + ``net.npz``). Conventions:

* weights are float, HWIO (depthwise ``(kh, kw, 1, C)``, linear ``(in, out)``); ``w_quant.scale`` is the
  per-output-channel step, so ``w_int = clip(round(w / scale), -2^(b-1), 2^(b-1) - 1)``;
* ``bn`` holds raw statistics (``gamma, beta, mean, var`` keys and ``eps``); fb-deploy folds them;
* ``tensors[T].scale`` is the activation step: unsigned values are ``scale * [0, 2^b - 1]``, signed ones
  ``scale * [-2^(b-1), 2^(b-1) - 1]``. The network output (the classifier's accumulator) is listed with
  ``bits: 32, signed: true`` and the scale of the classifier's input;
* ``input`` is the 8-bit input grid: ``x_int = clip(round(x / scale), grid(8, signed))``; optional ``range``
  ``[lo, hi]`` records the real input range it was made from (signed symmetric iff ``lo < 0``);
* ``reference`` holds a few inputs (NHWC, real values in the input range) and the fake-quant logits of the
  exporting model;
* optional ``topology`` is the network's ``freebits/topology/v1`` object, so the artifact reloads without a
  registered network.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fb_schema._errors import SchemaError
from fb_schema._io import Fields, check_tag, read_json, write_json
from fb_schema._layer_type import OPS, LayerType
from fb_schema._npz import npz_shapes

QUANTIZED_NETWORK_SCHEMA = "freebits/quantized-network/v1"
_NODE_FIELDS = {"name", "op", "inputs", "output", "layer_type", "weight", "bias", "bn", "w_quant"}


@dataclass(frozen=True)
class QuantizedNetwork:
    """A validated artifact. ``doc`` is the JSON object; ``npz_path`` the side archive.

    Example:
        >>> qn = QuantizedNetwork.load("tests/fixtures/golden_tinynet.json")  # doctest: +SKIP
        >>> [n["op"] for n in qn.nodes]  # doctest: +SKIP
        ['conv2d', 'depthwise_conv2d', 'add', 'avgpool', 'linear']
    """

    doc: dict[str, Any]
    npz_path: Path

    @property
    def network(self) -> str:
        return self.doc["network"]

    @property
    def nodes(self) -> list[dict[str, Any]]:
        return self.doc["nodes"]

    @property
    def tensors(self) -> dict[str, dict[str, Any]]:
        return self.doc["tensors"]

    @property
    def input(self) -> dict[str, Any]:
        return self.doc["input"]

    def layer_type(self, node: dict[str, Any]) -> LayerType | None:
        return None if node["layer_type"] is None else LayerType.from_key(node["layer_type"])

    @staticmethod
    def npz_for(json_path: str | os.PathLike) -> Path:
        return Path(json_path).with_suffix(".npz")

    def save(self, json_path: str | os.PathLike) -> None:
        """Write the JSON (atomically) after validating it against the npz already written beside it."""
        validate(self.doc, str(json_path), self.npz_for(json_path))
        write_json(json_path, self.doc)

    @classmethod
    def load(cls, json_path: str | os.PathLike) -> QuantizedNetwork:
        npz = cls.npz_for(json_path)
        doc = read_json(json_path)
        validate(doc, str(json_path), npz)
        return cls(doc, npz)


def validate(doc: Any, source: str, npz_path: str | os.PathLike) -> None:
    """Check the JSON contract and that every npz key exists with the expected shape."""
    npz = _Npz(npz_path)
    f = Fields(doc, source)
    f.only({"schema", "network", "config_sha256", "input", "nodes", "tensors", "reference", "topology"})
    check_tag(f, QUANTIZED_NETWORK_SCHEMA)
    f.get("network", str)
    if len(f.get("config_sha256", str)) != 64:
        raise f.error("config_sha256", "a sha256 hex digest (64 characters)")
    in_tensor, shape_nhwc = _check_input(f.sub("input"))
    if "topology" in f.obj:
        _check_topology(f, source)
    tensors = _check_tensors(f.sub("tensors"), source)
    known = {in_tensor: tuple(shape_nhwc[1:])}
    last_out_ch = None
    for path, item in f.items("nodes"):
        last_out_ch = _check_node(Fields(item, source, path), known, tensors, npz)
    _check_reference(f.sub("reference"), npz, shape_nhwc, last_out_ch)


class _Npz:
    """The arrays of the side ``.npz`` (dtype and shape from the headers) that the JSON names."""

    def __init__(self, npz_path: str | os.PathLike):
        self.name = Path(npz_path).name
        self.headers = npz_shapes(npz_path)
        self.shapes = {k: shape for k, (_, shape) in self.headers.items()}

    def need(self, field_owner: Fields, name: str, shape: tuple[int | None, ...] | None) -> None:
        """``field_owner[name]`` names a numeric array of ``shape``."""
        key = field_owner.get(name, str)
        if key not in self.shapes:
            raise field_owner.error(name, f"a key of {self.name}, {key!r} is missing")
        descr = self.headers[key][0]
        if not (isinstance(descr, str) and len(descr) > 1 and descr[1] in "fiu"):
            raise field_owner.error(name, f"a numeric npz array {key!r} (float or integer), got dtype {descr!r}")
        if self.shapes[key] != shape:
            got = list(self.shapes[key])
            raise field_owner.error(name, f"npz array {key!r} of shape {list(shape or ())}, got {got}")


def _check_input(inp: Fields) -> tuple[str, list]:
    """The input tensor's name and its ``[1, H, W, C]`` shape, after checking its grid and range."""
    inp.only({"tensor", "shape_nhwc", "bits", "signed", "scale", "range"})
    in_tensor = inp.get("tensor", str)
    shape_nhwc = inp.get("shape_nhwc", list)
    if len(shape_nhwc) != 4 or shape_nhwc[0] != 1 or not all(isinstance(d, int) and d > 0 for d in shape_nhwc):
        raise inp.error("shape_nhwc", f"[1, H, W, C] with positive integers, got {shape_nhwc!r}")
    _grid(inp)
    if "range" in inp.obj:
        rng = inp.get("range", list)
        if len(rng) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng):
            raise inp.error("range", f"[lo, hi] (two numbers), got {rng!r}")
        if (rng[0] < 0) != inp.obj["signed"]:
            raise inp.error("range", f"signed iff lo < 0 (signed is {str(inp.obj['signed']).lower()}), got {rng!r}")
    return in_tensor, shape_nhwc


def _check_topology(f: Fields, source: str) -> None:
    from fb_schema.topologies._file import topology_from_json

    topo = topology_from_json(f.obj["topology"], f"{source}: topology")
    if topo.name != f.obj["network"]:
        raise f.error("topology", f"the topology of network {f.obj['network']!r}, got {topo.name!r}")


def _check_tensors(tensors: Fields, source: str) -> Fields:
    for name, spec in tensors.obj.items():
        tf = Fields(spec, source, tensors.at(name))
        tf.only({"bits", "signed", "scale"})
        _grid(tf)
    return tensors


def _check_node(nf: Fields, known: dict[str, tuple], tensors: Fields, npz: _Npz) -> int:
    """Check one node against the tensors made before it; record its output in ``known``; its output channels."""
    nf.only(_NODE_FIELDS)
    nf.get("name", str)
    op = nf.get("op", str)
    if op not in OPS:
        raise nf.error("op", f"one of {', '.join(OPS)}, got {op!r}")
    key = nf.get("layer_type", str)
    try:
        lt = LayerType.from_key(key)
    except ValueError as exc:
        raise nf.error("layer_type", f"a valid layer-type key ({exc})") from None
    if lt.op != op:
        raise nf.error("layer_type", f"a key of op {op!r}, got {key!r}")
    for i, tensor in enumerate(nf.get("inputs", list)):
        if tensor not in known:
            raise nf.error(f"inputs[{i}]", f"the network input or an earlier node's output, got {tensor!r}")
    out = nf.get("output", str)
    if out in known:
        raise nf.error("output", f"a tensor name not produced before, {out!r} is")
    if out not in tensors.obj:
        raise nf.error("output", f"a tensor listed in tensors, {out!r} is not")
    known[out] = (*lt.out_hw, lt.out_ch)
    if lt.configurable:
        _check_weights(nf, lt, npz)
    else:
        for name in ("weight", "bias", "bn", "w_quant"):
            if nf.obj.get(name) is not None:
                raise nf.error(name, f"null for {op}")
    return lt.out_ch


def _check_weights(nf: Fields, lt: LayerType, npz: _Npz) -> None:
    """The weight, bias, batch-norm statistics and weight grid of a conv or linear node."""
    npz.need(nf, "weight", lt.weight_shape_hwio)
    if nf.get("bias", str, nullable=True) is not None:
        npz.need(nf, "bias", (lt.out_ch,))
    bn = nf.sub("bn", nullable=True)
    if bn is not None:
        bn.only({"gamma", "beta", "mean", "var", "eps"})
        for name in ("gamma", "beta", "mean", "var"):
            npz.need(bn, name, (lt.out_ch,))
        if not _positive(bn.get("eps", float)):
            raise bn.error("eps", f"a positive finite number, got {bn.obj['eps']}")
    wq = nf.sub("w_quant")
    wq.only({"bits", "scale", "per_channel"})
    if wq.get("bits", int) not in range(2, 9):
        raise wq.error("bits", f"a weight bit width in 2..8, got {wq.obj['bits']}")
    if wq.get("per_channel", bool) is not True:
        raise wq.error("per_channel", "true (weights are quantized per output channel)")
    npz.need(wq, "scale", (lt.out_ch,))


def _check_reference(ref: Fields, npz: _Npz, shape_nhwc: list, last_out_ch: int | None) -> None:
    """A few inputs of the network's shape and the exporting model's logits for them."""
    ref.only({"inputs", "logits"})
    key = ref.get("inputs", str)
    shapes = npz.shapes
    if key not in shapes or len(shapes[key]) != 4 or shapes[key][1:] != tuple(shape_nhwc[1:]):
        raise ref.error("inputs", f"npz array {key!r} of shape [N, {', '.join(map(str, shape_nhwc[1:]))}]")
    npz.need(ref, "logits", (shapes[key][0], last_out_ch))


def _grid(f: Fields) -> None:
    bits = f.get("bits", int)
    if not 1 <= bits <= 32:
        raise f.error("bits", f"a bit width in 1..32, got {bits}")
    f.get("signed", bool)
    if not _positive(f.get("scale", float)):
        raise f.error("scale", f"a positive finite step size, got {f.obj['scale']}")


def _positive(x: float) -> bool:
    """True for a finite number > 0 (NaN fails every comparison, so ``x <= 0`` alone lets it through)."""
    return math.isfinite(x) and x > 0


__all__ = ["QUANTIZED_NETWORK_SCHEMA", "QuantizedNetwork", "SchemaError", "validate"]
