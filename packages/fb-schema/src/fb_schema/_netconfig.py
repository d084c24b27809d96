"""NetConfig (``freebits/net-config/v1``): one precision pair per layer of a network, with provenance."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from typing import Any

from fb_schema._errors import SchemaError
from fb_schema._io import Fields, check_tag, read_json, sha256_of, write_json
from fb_schema._layer_type import LayerType, parse_layer_types
from fb_schema._precision import DEFAULT_BITS, Precision

NET_CONFIG_SCHEMA = "freebits/net-config/v1"
METHODS = ("bb-orig", "bb-locked", "fb", "homogeneous", "latency-bb", "knapsack", "manual")
ACCURACY_STAGES = ("float", "bb-eval", "tqt", "integer")


@dataclass(frozen=True)
class LayerConfig:
    """The precision of one layer; ``b_wt`` is None for add/avgpool; fixed inputs are never changed."""

    name: str
    layer_type: str
    b_in: int
    b_wt: int | None
    b_in_fixed: bool = False

    @property
    def precision(self) -> Precision:
        return Precision(self.b_in, self.b_wt)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "layer_type": self.layer_type,
            "b_in": self.b_in,
            "b_wt": self.b_wt,
            "b_in_fixed": self.b_in_fixed,
        }


@dataclass(frozen=True)
class NetConfig:
    """A network configuration: which (b_in, b_wt) each layer runs at.

    Example:
        >>> from fb_schema.topologies import digitsnet
        >>> cfg = NetConfig.homogeneous(digitsnet(), 4, 4)
        >>> cfg.layers[0].precision, cfg.layers[1].precision
        (Precision(b_in=8, b_wt=8), Precision(b_in=4, b_wt=4))
        >>> len(cfg.sha256())
        64
    """

    network: str
    layer_types: dict[str, LayerType]
    layers: tuple[LayerConfig, ...]
    provenance: dict[str, Any] = field(default_factory=lambda: {"method": "manual"})
    metrics: dict[str, Any] = field(default_factory=dict)

    # -- construction -------------------------------------------------------------------------------------------
    @classmethod
    def homogeneous(cls, topology, b_in: int, b_wt: int, **provenance: Any) -> NetConfig:
        """Every searchable layer at (b_in, b_wt); fixed inputs and non-configurable layers at 8 bits.

        The first layer is (8, 8) in every shipped config: its weights follow its fixed 8-bit input.
        """
        layers = []
        for layer in topology.layers:
            lt = layer.layer_type
            fixed = topology.b_in_fixed(layer.name)
            first = layer.inputs == ("input",)
            wt = None if not lt.configurable else (8 if first else b_wt)
            layers.append(LayerConfig(layer.name, lt.key, 8 if fixed else b_in, wt, fixed))
        prov = {"method": "homogeneous", "parent": None, "bits": [b_in, b_wt], **provenance}
        return cls(topology.name, topology.layer_types(), tuple(layers), prov)

    def with_precisions(self, precisions: dict[str, Precision], **provenance: Any) -> NetConfig:
        """A copy with some layers at new precisions (fixed inputs must keep their b_in)."""
        layers = []
        for layer in self.layers:
            p = precisions.get(layer.name)
            if p is not None:
                if layer.b_in_fixed and p.b_in != layer.b_in:
                    raise ValueError(f"{layer.name}: b_in is fixed at {layer.b_in}")
                layer = replace(layer, b_in=p.b_in, b_wt=p.b_wt)
            layers.append(layer)
        prov = {**self.provenance, **provenance} if provenance else dict(self.provenance)
        return replace(self, layers=tuple(layers), provenance=prov, metrics={})

    # -- access -------------------------------------------------------------------------------------------------
    def layer(self, name: str) -> LayerConfig:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer named {name!r} in config of {self.network}")

    def precisions(self) -> dict[str, Precision]:
        return {layer.name: layer.precision for layer in self.layers}

    def bops(self) -> int:
        """Bit operations: sum over weighted layers of MACs * b_in * b_wt."""
        return sum(self.layer_types[l.layer_type].macs * l.b_in * l.b_wt for l in self.layers if l.b_wt is not None)

    # -- (de)serialization --------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "schema": NET_CONFIG_SCHEMA,
            "network": self.network,
            "provenance": self.provenance,
            "layer_types": {k: lt.to_json() for k, lt in self.layer_types.items()},
            "layers": [layer.to_json() for layer in self.layers],
            "metrics": self.metrics,
        }

    def identity_json(self) -> dict[str, Any]:
        """What makes two configs the same network at the same precisions: no provenance, no metrics."""
        doc = self.to_json()
        return {k: doc[k] for k in ("schema", "network", "layer_types", "layers")}

    def sha256(self) -> str:
        """sha256 of the canonical JSON of :meth:`identity_json`: stable as provenance and metrics are added.

        Example:
            >>> from fb_schema.topologies import digitsnet
            >>> cfg = NetConfig.homogeneous(digitsnet(), 4, 4)
            >>> cfg.with_metrics(val_accuracy=0.9).sha256() == cfg.sha256()
            True
        """
        return sha256_of(self.identity_json())

    def with_metrics(self, **metrics: Any) -> NetConfig:
        """A copy whose metrics are this config's updated with ``metrics`` (the config itself is frozen)."""
        return replace(self, metrics={**self.metrics, **metrics})

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike, allowed_bits: tuple[int, ...] = DEFAULT_BITS) -> NetConfig:
        return cls.from_json(read_json(path), str(path), allowed_bits)

    @classmethod
    def from_json(cls, obj: Any, source: str = "<net-config>", allowed_bits=DEFAULT_BITS) -> NetConfig:
        f = Fields(obj, source)
        f.only({"schema", "network", "provenance", "layer_types", "layers", "metrics"})
        check_tag(f, NET_CONFIG_SCHEMA)
        network = f.get("network", str)
        provenance = _provenance(f)
        metrics = _metrics(f)
        layer_types = parse_layer_types(f)
        layers, seen = [], set()
        for path, item in f.items("layers"):
            lf = Fields(item, source, path)
            lf.only({"name", "layer_type", "b_in", "b_wt", "b_in_fixed"})
            name = lf.get("name", str)
            if name in seen:
                raise lf.error("name", f"a unique layer name, {name!r} appears twice")
            seen.add(name)
            key = lf.get("layer_type", str)
            if key not in layer_types:
                raise lf.error("layer_type", f"a key of layer_types, got unknown {key!r}")
            b_in = _bits(lf, "b_in", allowed_bits)
            assert b_in is not None  # not nullable: _bits raised on null
            configurable = layer_types[key].configurable
            b_wt = _bits(lf, "b_wt", allowed_bits, nullable=not configurable)
            if configurable and b_wt is None:
                raise lf.error("b_wt", f"an integer for {layer_types[key].op}")
            if not configurable and b_wt is not None:
                raise lf.error("b_wt", f"null for non-configurable {layer_types[key].op}, got {b_wt}")
            layers.append(LayerConfig(name, key, b_in, b_wt, lf.get("b_in_fixed", bool)))
        if not layers:
            raise f.error("layers", "at least one layer")
        return cls(network, layer_types, tuple(layers), provenance, metrics)


def _bits(f: Fields, name: str, allowed: tuple[int, ...], nullable: bool = False) -> int | None:
    value = f.get(name, int, nullable=nullable)
    if value is not None and value not in allowed:
        raise f.error(name, f"a bit width in {sorted(allowed)}, got {value}")
    return value


def _provenance(f: Fields) -> dict[str, Any]:
    p = f.sub("provenance")
    assert p is not None
    method = p.get("method", str)
    if method not in METHODS:
        raise p.error("method", f"one of {', '.join(METHODS)}, got {method!r}")
    for name, kind in (("parent", str), ("table_sha256", str), ("checkpoint", str), ("seed", int), ("mu", float)):
        p.get(name, kind, nullable=True, default=None)
    return dict(p.obj)


def _metrics(f: Fields) -> dict[str, Any]:
    m = f.sub("metrics")
    assert m is not None
    acc = m.get("val_accuracy", float, nullable=True, default=None)
    if acc is not None and not 0.0 <= acc <= 1.0:
        raise m.error("val_accuracy", f"a fraction in [0, 1], got {acc}")
    stage = m.get("accuracy_stage", str, nullable=True, default=None)
    if stage is not None and stage not in ACCURACY_STAGES:
        raise m.error("accuracy_stage", f"one of {', '.join(ACCURACY_STAGES)}, got {stage!r}")
    latency = m.get("latency", dict, default={})
    for target, cycles in latency.items():
        if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles < 0:
            raise SchemaError(f.source, f"metrics.latency.{target}", f"a non-negative integer, got {cycles!r}")
    bops = m.get("bops", int, nullable=True, default=None)
    if bops is not None and bops < 0:
        raise m.error("bops", f"a non-negative integer, got {bops}")
    return dict(m.obj)
