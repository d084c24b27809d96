"""Network topologies shared by every package: fb-search builds models from them, fb-profile and fb-deploy read
them, so layer-type keys agree by construction."""

from fb_schema.topologies._builtin import (
    BUILTIN,
    digitsnet,
    get_topology,
    mobilenetv1,
    mobilenetv2,
    resolve_topology,
    tinynet,
)
from fb_schema.topologies._file import (
    TOPOLOGY_SCHEMA,
    is_topology_path,
    load_topology,
    save_topology,
    topology_from_json,
    topology_sha256,
    topology_to_json,
)
from fb_schema.topologies._topology import ACTIVATIONS, INPUT, Topology, TopologyLayer

__all__ = [
    "ACTIVATIONS",
    "BUILTIN",
    "TOPOLOGY_SCHEMA",
    "INPUT",
    "Topology",
    "TopologyLayer",
    "digitsnet",
    "get_topology",
    "is_topology_path",
    "load_topology",
    "mobilenetv1",
    "mobilenetv2",
    "resolve_topology",
    "save_topology",
    "tinynet",
    "topology_from_json",
    "topology_sha256",
    "topology_to_json",
]
