"""The ``table`` backend: latencies measured anywhere, imported from CSV or JSON.

CSV: a header ``layer_type,b_in,b_wt,latency`` and one row per point (``b_wt`` empty, ``-`` or ``null`` for add /
avgpool). JSON: a LatencyTable file, or a list of ``{"layer_type", "b_in", "b_wt", "latency"}`` objects. Every key
must be a valid layer-type key (it carries all layer parameters); bad rows are one-line errors naming the file,
the row and the field.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fb_schema import LatencyTable, LayerType, SchemaError, Target

Point = tuple[str, int, int | None]
COLUMNS = ("layer_type", "b_in", "b_wt", "latency")


@dataclass
class TableBackend:
    """Looks points up in an imported table; a point it lacks fails (and is listed under ``failed``)."""

    path: str
    points: dict[Point, int]
    digest: str
    isa: str = "custom"
    b_out: int | None = None
    name: str = "table"
    version: str = "1"
    layer_types: dict[str, LayerType] = field(default_factory=dict)
    source_target: str | None = None  # the imported table's own target name (e.g. gvsoc-xpulpv2-kit-gcc12)
    source_provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def spec(self) -> str:
        return f"table:{self.path}"

    def provenance(self) -> dict[str, Any]:
        """The file the latencies come from, its measured target and that table's own provenance."""
        return {"source": self.path, "source_sha256": self.digest, "source_target": self.source_target,
                "source_provenance": self.source_provenance}  # fmt: skip

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> TableBackend:
        p = Path(path)
        try:
            raw = p.read_bytes()
        except OSError as exc:
            raise ValueError(f"{p}: cannot read the measured table ({exc.strerror})") from None
        digest = hashlib.sha256(raw).hexdigest()
        if p.suffix.lower() == ".csv":
            points = read_csv(raw.decode(), str(p))
            return cls(str(p), points, digest, layer_types=_types(points))
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}: line {exc.lineno}: expected valid JSON ({exc.msg})") from None
        if isinstance(obj, dict) and "schema" in obj:
            try:
                table = LatencyTable.from_json(obj, str(p))
            except SchemaError as exc:
                raise ValueError(str(exc)) from None
            return cls(str(p), dict(table.entries), digest, table.target.isa, table.target.b_out,
                       layer_types=dict(table.layer_types), source_target=table.target.name,
                       source_provenance=dict(table.provenance))  # fmt: skip
        if not isinstance(obj, list):
            raise ValueError(f"{p}: expected a latency table or a list of {{{', '.join(COLUMNS)}}} objects")
        points = {}
        for i, row in enumerate(obj):
            if not isinstance(row, dict) or set(row) != set(COLUMNS):
                raise ValueError(f"{p}: [{i}]: expected an object with exactly the fields {', '.join(COLUMNS)}")
            _add(points, row, f"{p}: [{i}]")
        return cls(str(p), points, digest, layer_types=_types(points))

    def slug(self) -> str:
        stem = re.sub(r"[^a-z0-9_.-]+", "-", Path(self.path).stem.lower()).strip("-.") or "measured"
        return f"table-{stem}"

    def cache_params(self) -> dict[str, Any]:
        return {"sha256": self.digest}

    def target(self, b_out: int, allowed_bits: tuple[int, ...]) -> Target:
        return Target(self.slug(), self.isa, backend=self.name, backend_version=f"{self.version}+{self.digest[:12]}",
                      b_out=b_out, allowed_bits=tuple(sorted(allowed_bits)))  # fmt: skip

    def check(self, bits: tuple[int, ...], b_out: int = 8) -> None:
        if self.b_out is not None and b_out != self.b_out:
            raise ValueError(f"{self.path}: measured at b_out={self.b_out}, the sweep asks for b_out={b_out}")

    def latency(self, lt: LayerType, b_in: int, b_wt: int | None, b_out: int = 8) -> int:
        try:
            return self.points[(lt.key, b_in, b_wt)]
        except KeyError:
            raise LookupError(f"{self.path} has no measurement of {lt.key} at ({b_in}, {b_wt})") from None


def _types(points: dict[Point, int]) -> dict[str, LayerType]:
    return {k: LayerType.from_key(k) for k, _, _ in points}


def _int(value: Any, where: str, name: str, nullable: bool = False) -> int | None:
    if nullable and value in (None, "", "-", "null", "None"):
        return None
    try:
        out = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}: {name}: expected an integer, got {value!r}") from None
    if isinstance(value, float) and value != out:
        raise ValueError(f"{where}: {name}: expected an integer, got {value!r}")
    return out


def _add(points: dict[Point, int], row: dict[str, Any], where: str) -> None:
    key = row["layer_type"]
    try:
        lt = LayerType.from_key(str(key))
    except ValueError as exc:
        raise ValueError(f"{where}: layer_type: expected a layer-type key ({exc})") from None
    b_in = _int(row["b_in"], where, "b_in")
    b_wt = _int(row["b_wt"], where, "b_wt", nullable=True)
    latency = _int(row["latency"], where, "latency")
    for name, bits in (("b_in", b_in), ("b_wt", b_wt)):
        if bits is not None and not 1 <= bits <= 32:
            raise ValueError(f"{where}: {name}: expected a bit width in 1..32, got {bits}")
    if lt.configurable and b_wt is None:
        raise ValueError(f"{where}: b_wt: expected an integer for {lt.op}")
    if not lt.configurable and b_wt is not None:
        raise ValueError(f"{where}: b_wt: expected empty for non-configurable {lt.op}, got {b_wt}")
    if latency < 0:
        raise ValueError(f"{where}: latency: expected a non-negative integer, got {latency}")
    point = (lt.key, b_in, b_wt)
    if point in points:
        raise ValueError(f"{where}: duplicate point {point}")
    points[point] = latency


def read_csv(text: str, source: str = "<csv>") -> dict[Point, int]:
    """Parse ``layer_type,b_in,b_wt,latency`` rows (header required)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or [f.strip() for f in reader.fieldnames] != list(COLUMNS):
        raise ValueError(f"{source}: line 1: expected the header {','.join(COLUMNS)}, got {reader.fieldnames}")
    points: dict[Point, int] = {}
    for row in reader:
        _add(points, {k.strip(): (v or "").strip() for k, v in row.items() if k}, f"{source}: line {reader.line_num}")
    if not points:
        raise ValueError(f"{source}: no rows after the header")
    return points
