"""Topology files (``freebits/topology/v1``): a network described in JSON instead of Python.

Layout (see the package README for the contract)::

    {"schema": "freebits/topology/v1", "name": NAME, "num_classes": N,
     "input": {"shape_hwc": [H, W, C], "layout": "nhwc|nchw", "range": [lo, hi]},
     "layer_types": {KEY: {LayerType fields}},
     "layers": [{"name", "layer_type": KEY, "inputs": [TENSOR...], "act": "relu|relu6|none", "bias": bool}],
     "params": {...}}

Every key is recomputed from its parameters, every layer is shape-checked against its inputs, and anything
malformed is a one-line ``SchemaError("<file>: <field.path>: <expected>")``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from fb_schema._errors import SchemaError
from fb_schema._io import Fields, check_tag, read_json, sha256_of, write_json
from fb_schema._layer_type import parse_layer_types
from fb_schema.topologies._topology import ACTIVATIONS, LAYOUTS, Topology, TopologyLayer

TOPOLOGY_SCHEMA = "freebits/topology/v1"
_LAYER_FIELDS = {"name", "layer_type", "inputs", "act", "bias"}


def topology_to_json(topology: Topology) -> dict[str, Any]:
    """The ``freebits/topology/v1`` object of ``topology``."""
    return {
        "schema": TOPOLOGY_SCHEMA,
        "name": topology.name,
        "num_classes": topology.num_classes,
        "input": {
            "shape_hwc": list(topology.input_shape),
            "layout": topology.input_layout,
            "range": [float(v) for v in topology.input_range],
        },
        "layer_types": {key: lt.to_json() for key, lt in topology.layer_types().items()},
        "layers": [
            {
                "name": layer.name,
                "layer_type": layer.layer_type.key,
                "inputs": list(layer.inputs),
                "act": layer.act,
                "bias": layer.bias,
            }
            for layer in topology.layers
        ],
        "params": dict(topology.params),
    }


def topology_from_json(doc: Any, source: str = "<object>") -> Topology:
    """Parse and validate a topology object; raises SchemaError naming the field."""
    f = Fields(doc, source)
    f.only({"schema", "name", "num_classes", "input", "layer_types", "layers", "params"})
    check_tag(f, TOPOLOGY_SCHEMA)
    name = f.get("name", str)
    num_classes = f.get("num_classes", int)
    inp = f.sub("input")
    inp.only({"shape_hwc", "layout", "range"})
    shape = inp.get("shape_hwc", list)
    if len(shape) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
        raise inp.error("shape_hwc", f"[H, W, C] with positive integers, got {shape!r}")
    layout = inp.get("layout", str, default="nhwc")
    if layout not in LAYOUTS:
        raise inp.error("layout", f"one of {', '.join(LAYOUTS)}, got {layout!r}")
    rng = inp.get("range", list, default=[0.0, 1.0])
    if len(rng) != 2 or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rng):
        raise inp.error("range", f"[lo, hi] (two numbers), got {rng!r}")
    if not (rng[0] < rng[1] and rng[1] > 0):
        raise inp.error("range", f"lo < hi and hi > 0, got {rng!r}")
    types = parse_layer_types(f)
    layers = []
    for path, item in f.items("layers"):
        lf = Fields(item, source, path)
        lf.only(_LAYER_FIELDS)
        key = lf.get("layer_type", str)
        if key not in types:
            raise lf.error("layer_type", f"a key of layer_types, {key!r} is not one")
        inputs = lf.get("inputs", list)
        if not all(isinstance(t, str) for t in inputs):
            raise lf.error("inputs", f"a list of tensor names, got {inputs!r}")
        act = lf.get("act", str, default="none")
        if act not in ACTIVATIONS:
            raise lf.error("act", f"one of {', '.join(ACTIVATIONS)}, got {act!r}")
        bias = lf.get("bias", bool, default=types[key].op == "linear")
        layers.append(TopologyLayer(lf.get("name", str), types[key], tuple(inputs), act, bias))
    params = f.get("params", dict, default={})
    try:
        return Topology(name, tuple(shape), num_classes, tuple(layers), params, layout, (float(rng[0]), float(rng[1])))
    except ValueError as exc:
        raise SchemaError(source, "layers", str(exc).removeprefix(f"{name}: ")) from None


def load_topology(path: str | os.PathLike) -> Topology:
    """Read a topology file.

    Example:
        >>> import tempfile, os
        >>> from fb_schema.topologies import tinynet
        >>> path = os.path.join(tempfile.mkdtemp(), "tiny.json")
        >>> save_topology(tinynet(), path)
        >>> load_topology(path) == tinynet()
        True
    """
    return topology_from_json(read_json(path), str(path))


def save_topology(topology: Topology, path: str | os.PathLike) -> None:
    """Write a topology file atomically (validated by reading it back first)."""
    doc = topology_to_json(topology)
    topology_from_json(doc, str(path))
    write_json(path, doc)


def topology_sha256(topology: Topology) -> str:
    """sha256 of the canonical JSON of the topology file."""
    return sha256_of(topology_to_json(topology))


def is_topology_path(name: str | os.PathLike) -> bool:
    """Whether a ``--network`` value names a topology file rather than a built-in network."""
    return str(name).endswith(".json") or os.sep in str(name) or Path(name).is_file()
