"""The layer types of a network: from a built-in topology, a NetConfig file or an ONNX model.

A latency table (the paper's LD, Free Bits, arXiv 2307.02894, Sec. III) is indexed by layer *type*, so identical
layers (e.g. MobileNetV1's five 14x14x512 blocks) are profiled once; network latency sums over the layers with
their multiplicity.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path
from typing import Any

from fb_schema import LayerType, NetConfig, SchemaError
from fb_schema.topologies import Topology, is_topology_path, resolve_topology

Source = Any  # Topology | NetConfig | path of a NetConfig (.json) or ONNX model (.onnx) | onnx.ModelProto


def network_layers(source: Source) -> list[tuple[str, LayerType]]:
    """(layer name, LayerType) of every layer of ``source``, in network order, repeats included.

    Raises:
        ValueError: the source is not understood (a one-line message naming it).
    """
    if isinstance(source, Topology):
        return [(layer.name, layer.layer_type) for layer in source.layers]
    if isinstance(source, NetConfig):
        return [(layer.name, source.layer_types[layer.layer_type]) for layer in source.layers]
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if path.suffix == ".onnx":
            from fb_profile._onnx_import import onnx_layers

            return onnx_layers(path)
        if path.suffix == ".json":
            try:
                return network_layers(_load_json_source(path))
            except SchemaError as exc:
                raise ValueError(str(exc)) from None
        raise ValueError(f"{path}: expected a NetConfig or topology (.json) or an ONNX model (.onnx)")
    if type(source).__name__ == "ModelProto":
        from fb_profile._onnx_import import onnx_layers

        return onnx_layers(source)
    raise ValueError(f"cannot read layer types from a {type(source).__name__}; expected a topology, config or ONNX")


def _load_json_source(path: Path):
    """A NetConfig, or a topology file (told apart by their ``schema`` tag)."""
    from fb_schema import read_json
    from fb_schema.topologies import TOPOLOGY_SCHEMA, topology_from_json

    doc = read_json(path)
    if isinstance(doc, dict) and doc.get("schema") == TOPOLOGY_SCHEMA:
        return topology_from_json(doc, str(path))
    return NetConfig.load(path)


def layer_types_of(source: Source) -> dict[str, LayerType]:
    """Unique layer types of ``source`` by key, in order of first use.

    Example:
        >>> from fb_schema.topologies import mobilenetv1
        >>> types = layer_types_of(mobilenetv1(0.75, 224))
        >>> len(types), next(iter(types))
        (21, 'conv2d_224x224x3_o24_k3x3_s2x2_p1.1.1.1_g1')
    """
    if isinstance(source, dict) and all(isinstance(v, LayerType) for v in source.values()):
        return dict(source)
    out: dict[str, LayerType] = {}
    for _, lt in network_layers(source):
        out.setdefault(lt.key, lt)
    return out


def layer_counts(source: Source) -> dict[str, int]:
    """How many layers of ``source`` share each layer type (the multiplicity for network sums)."""
    return dict(Counter(lt.key for _, lt in network_layers(source)))


def builtin_network(name: str, width: float | None = None, resolution: int | None = None) -> Topology:
    """A built-in topology (width/resolution only where given: each network has its own defaults) or a topology
    file by path."""
    params: dict[str, Any] = {}
    if width is not None:
        params["width"] = width
    if resolution is not None:
        params["resolution"] = resolution
    if is_topology_path(name) and params:
        raise ValueError(f"--network {name}: a topology file takes no width/resolution")
    try:
        return resolve_topology(name, **params)
    except SchemaError as exc:
        raise ValueError(str(exc)) from None
    except TypeError:
        raise ValueError(f"network {name!r} takes no {'/'.join(params)} parameter") from None
