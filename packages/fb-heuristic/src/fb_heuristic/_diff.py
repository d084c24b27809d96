"""Per-layer differences between two configurations of one network, with latencies from a table."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from fb_schema import LatencyTable, NetConfig


@dataclass(frozen=True)
class LayerDiff:
    name: str
    layer_type: str
    before: str
    after: str
    latency_before: int | None
    latency_after: int | None

    @property
    def changed(self) -> bool:
        return self.before != self.after

    def to_json(self) -> dict:
        return asdict(self) | {"changed": self.changed}


def diff(before: NetConfig, after: NetConfig, table: LatencyTable | None = None) -> list[LayerDiff]:
    """One row per layer: precision and (if a table is given) latency before and after.

    Example:
        >>> from fb_schema.topologies import tinynet
        >>> a = NetConfig.homogeneous(tinynet(), 8, 8)
        >>> b = NetConfig.homogeneous(tinynet(), 4, 4)
        >>> [(d.name, d.before, d.after) for d in diff(a, b) if d.changed]
        [('dw1', '8b/8b', '4b/4b'), ('fc', '8b/8b', '4b/4b')]
    """
    if [l.name for l in before.layers] != [l.name for l in after.layers]:
        raise ValueError(f"configs of different networks: {before.network} and {after.network} differ in layers")
    rows = []
    for a, b in zip(before.layers, after.layers):
        key = before.layer_types[a.layer_type].key

        def lat(layer, _key=key):
            return None if table is None else table.latency(_key, layer.precision)

        rows.append(LayerDiff(a.name, key, str(a.precision), str(b.precision), lat(a), lat(b)))
    return rows


def format_diff(rows: list[LayerDiff], only_changed: bool = False) -> str:
    """A readable fixed-width table; totals at the bottom when latencies are known."""
    shown = [r for r in rows if r.changed or not only_changed]
    width = max([len(r.name) for r in shown] + [5])
    lines = [f"{'layer':<{width}}  {'before':>7}  {'after':>7}  {'cycles before':>13}  {'cycles after':>12}  {'Δ':>8}"]
    for r in shown:
        if r.latency_before is None or r.latency_after is None:
            lat = f"{'':>13}  {'':>12}  {'':>8}"
        else:
            delta = r.latency_after - r.latency_before
            lat = f"{r.latency_before:>13,}  {r.latency_after:>12,}  {delta:>+8,}"
        mark = " *" if r.changed else ""
        lines.append(f"{r.name:<{width}}  {r.before:>7}  {r.after:>7}  {lat}{mark}")
    before = [r.latency_before for r in rows]
    after = [r.latency_after for r in rows]
    if rows and None not in before and None not in after:  # a table was given: every row has both
        tb = sum(b for b in before if b is not None)
        ta = sum(a for a in after if a is not None)
        lines.append(
            f"{'total':<{width}}  {'':>7}  {'':>7}  {tb:>13,}  {ta:>12,}  {ta - tb:>+8,} ({(ta - tb) / tb:+.1%})"
        )
    return "\n".join(lines)
