"""Network topologies shared by every package: fb-search builds models from them, fb-profile and fb-deploy read
them, so layer-type keys agree by construction."""

from fb_schema.topologies._builtin import BUILTIN, digitsnet, get_topology, mobilenetv1, mobilenetv2, tinynet
from fb_schema.topologies._topology import INPUT, Topology, TopologyLayer

__all__ = [
    "BUILTIN",
    "INPUT",
    "Topology",
    "TopologyLayer",
    "digitsnet",
    "get_topology",
    "mobilenetv1",
    "mobilenetv2",
    "tinynet",
]
