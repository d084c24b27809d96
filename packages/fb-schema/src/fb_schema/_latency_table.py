"""LatencyTable (``freebits/latency-table/v1``, the paper's LD): cycles per (layer type, b_in, b_wt) on a target."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any

from fb_schema._errors import MissingLatencyError, SchemaError
from fb_schema._io import Fields, check_tag, read_json, sha256_of, write_json
from fb_schema._layer_type import LayerType, parse_layer_types
from fb_schema._precision import DEFAULT_BITS, Precision

LATENCY_TABLE_SCHEMA = "freebits/latency-table/v1"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")
TARGET_FIELDS = {
    "name": str,
    "isa": str,
    "cores": int,
    "l1_bytes": int,
    "l2_bytes": int,
    "backend": str,
    "backend_version": str,
    "unit": str,
    "b_out": int,
    "allowed_bits": list,
}


@dataclass(frozen=True)
class Target:
    """What a table was measured on. ``name`` is a slug usable in file names (no colon)."""

    name: str
    isa: str
    cores: int = 8
    l1_bytes: int = 65536
    l2_bytes: int = 524288
    backend: str = "pulp-model"
    backend_version: str = "0"
    unit: str = "cycles"
    b_out: int = 8
    allowed_bits: tuple[int, ...] = DEFAULT_BITS

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in TARGET_FIELDS}
        d["allowed_bits"] = list(self.allowed_bits)
        return d


@dataclass(frozen=True)
class LatencyTable:
    """Latency of every layer type at every precision pair on one target.

    Example:
        >>> lt = LayerType.linear(64, 10)
        >>> table = LatencyTable(Target("demo", "xpulpv2"), {lt.key: lt}, {(lt.key, 8, 8): 900, (lt.key, 4, 4): 1200})
        >>> table.latency(lt.key, Precision(8, 8))
        900
    """

    target: Target
    layer_types: dict[str, LayerType]
    entries: dict[tuple[str, int, int | None], int]
    failed: list[dict[str, Any]] = field(default_factory=list)
    # How the table was made (tool commits, toolchain, date, command, timing); free-form, omitted when empty.
    provenance: dict[str, Any] = field(default_factory=dict, compare=False)

    def latency(self, key: str, p: Precision) -> int:
        """Cycles of ``key`` at ``p``; MissingLatencyError names the key and pair when absent."""
        try:
            return self.entries[(key, p.b_in, p.b_wt)]
        except KeyError:
            raise MissingLatencyError(key, p.b_in, p.b_wt, f"latency table {self.target.name}") from None

    def has(self, key: str, p: Precision) -> bool:
        return (key, p.b_in, p.b_wt) in self.entries

    def pairs(self, key: str) -> list[Precision]:
        """The precision pairs measured for ``key``."""
        return sorted(Precision(b_in, b_wt) for (k, b_in, b_wt) in self.entries if k == key)

    def to_json(self) -> dict[str, Any]:
        entries = [
            {"layer_type": k, "b_in": a, "b_wt": w, "latency": v}
            for (k, a, w), v in sorted(self.entries.items(), key=lambda kv: (kv[0][0], kv[0][1], kv[0][2] or 0))
        ]
        out = {
            "schema": LATENCY_TABLE_SCHEMA,
            "target": self.target.to_json(),
            "layer_types": {k: lt.to_json() for k, lt in self.layer_types.items()},
            "entries": entries,
            "failed": list(self.failed),
        }
        if self.provenance:
            out["provenance"] = dict(self.provenance)
        return out

    def sha256(self) -> str:
        """The table's identity: target, layer types, entries and failures. Like ``==``, it leaves out the
        provenance, so a table re-made with the same numbers on another day keeps its hash."""
        body = self.to_json()
        body.pop("provenance", None)
        return sha256_of(body)

    def save(self, path: str | os.PathLike) -> None:
        write_json(path, self.to_json())

    @classmethod
    def load(cls, path: str | os.PathLike) -> LatencyTable:
        return cls.from_json(read_json(path), str(path))

    @classmethod
    def from_json(cls, obj: Any, source: str = "<latency-table>") -> LatencyTable:
        f = Fields(obj, source)
        f.only({"schema", "target", "layer_types", "entries", "failed", "provenance"})
        check_tag(f, LATENCY_TABLE_SCHEMA)
        target = _target(f)
        allowed = target.allowed_bits
        layer_types = parse_layer_types(f)
        entries: dict[tuple[str, int, int | None], int] = {}
        for path, item in f.items("entries"):
            ef = Fields(item, source, path)
            ef.only({"layer_type", "b_in", "b_wt", "latency"})
            key = _point(ef, layer_types, allowed)
            latency = ef.get("latency", int)
            if latency < 0:
                raise ef.error("latency", f"a non-negative integer number of {target.unit}, got {latency}")
            if key in entries:
                raise ef.error("layer_type", f"one entry per (layer type, b_in, b_wt); {key} appears twice")
            entries[key] = latency
        failed = []
        for path, item in f.items("failed") if "failed" in f.obj else []:
            ff = Fields(item, source, path)
            ff.only({"layer_type", "b_in", "b_wt", "error"})
            _point(ff, layer_types, allowed)
            ff.get("error", str)
            failed.append(dict(item))
        provenance = f.get("provenance", dict) if "provenance" in f.obj else {}
        return cls(target, layer_types, entries, failed, provenance)


def _point(f: Fields, layer_types: dict[str, LayerType], allowed: tuple[int, ...]) -> tuple[str, int, int | None]:
    key = f.get("layer_type", str)
    if key not in layer_types:
        raise f.error("layer_type", f"a key of layer_types, got unknown {key!r}")
    configurable = layer_types[key].configurable
    b_in = f.get("b_in", int)
    b_wt = f.get("b_wt", int, nullable=not configurable)
    for name, bits in (("b_in", b_in), ("b_wt", b_wt)):
        if bits is not None and bits not in allowed:
            raise f.error(name, f"a bit width in target.allowed_bits {sorted(allowed)}, got {bits}")
    if configurable and b_wt is None:
        raise f.error("b_wt", f"an integer for {layer_types[key].op}")
    if not configurable and b_wt is not None:
        raise f.error("b_wt", f"null for non-configurable {layer_types[key].op}, got {b_wt}")
    return key, b_in, b_wt


def _target(f: Fields) -> Target:
    t = f.sub("target")
    assert t is not None
    t.only(set(TARGET_FIELDS))
    values = {name: t.get(name, kind) for name, kind in TARGET_FIELDS.items()}
    if not _SLUG.match(values["name"]):
        raise t.error("name", f"a slug of [a-z0-9_.-] usable as a file name, got {values['name']!r}")
    for name in ("cores", "l1_bytes", "l2_bytes", "b_out"):
        if values[name] < 1:
            raise t.error(name, f"a positive integer, got {values[name]}")
    bits = values["allowed_bits"]
    if not bits or not all(isinstance(b, int) and not isinstance(b, bool) and 1 <= b <= 32 for b in bits):
        raise t.error("allowed_bits", f"a non-empty list of bit widths in 1..32, got {bits!r}")
    if len(set(bits)) != len(bits):
        raise SchemaError(f.source, "target.allowed_bits", f"distinct bit widths, got {bits!r}")
    values["allowed_bits"] = tuple(sorted(bits))
    return Target(**values)
