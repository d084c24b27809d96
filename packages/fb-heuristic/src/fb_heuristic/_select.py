"""Choosing among candidate configurations: Pareto front and selection by latency target or accuracy margin."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from fb_heuristic._free_bits import network_latency
from fb_schema import LatencyTable, NetConfig, Precision


@dataclass(frozen=True)
class Scored:
    """A configuration with the two numbers selection looks at."""

    config: NetConfig
    latency: int
    accuracy: float


def score(configs: Sequence[NetConfig], table: LatencyTable) -> list[Scored]:
    """Latency from ``table`` and ``metrics.val_accuracy`` of each config (a missing accuracy is an error)."""
    out = []
    for i, cfg in enumerate(configs):
        acc = cfg.metrics.get("val_accuracy")
        if acc is None:
            raise ValueError(f"config #{i} ({cfg.provenance.get('method')}): metrics.val_accuracy is missing")
        out.append(Scored(cfg, network_latency(cfg, table), float(acc)))
    return out


def pareto_front(configs: Sequence[NetConfig], table: LatencyTable) -> list[Scored]:
    """The configurations no other one beats in both latency (lower) and accuracy (higher), fastest first.

    Example:
        >>> from fb_schema import Target
        >>> from fb_schema.topologies import tinynet
        >>> def cfg(bits, acc):
        ...     c = NetConfig.homogeneous(tinynet(), bits, bits)
        ...     return NetConfig(c.network, c.layer_types, c.layers, c.provenance, {"val_accuracy": acc})
        >>> cs = [cfg(8, 0.9), cfg(4, 0.85), cfg(2, 0.95)]
        >>> entries = {(k, a, w): a * (w or 1) for k, t in cs[0].layer_types.items()
        ...            for a in (2, 4, 8) for w in ((2, 4, 8) if t.configurable else (None,))}
        >>> table = LatencyTable(Target("demo", "xpulpv2"), cs[0].layer_types, entries)
        >>> [s.accuracy for s in pareto_front(cs, table)]
        [0.95]
    """
    scored = sorted(score(configs, table), key=lambda s: (s.latency, -s.accuracy))
    front: list[Scored] = []
    for s in scored:
        if not front or s.accuracy > front[-1].accuracy:
            front.append(s)
    return front


def check_same_network(config: NetConfig, baseline: NetConfig, name: str = "config") -> None:
    """Raise ValueError unless ``config`` has the baseline's layers: the same names, in order, of the same types.

    Selection compares latencies and accuracies, which means nothing between different networks (a config
    holding 3 of 10 layers would look very fast).
    """
    ours = [(layer.name, config.layer_types[layer.layer_type].key) for layer in config.layers]
    theirs = [(layer.name, baseline.layer_types[layer.layer_type].key) for layer in baseline.layers]
    if ours == theirs:
        return
    names, base_names = [n for n, _ in ours], [n for n, _ in theirs]
    missing = [n for n in base_names if n not in names]
    extra = [n for n in names if n not in base_names]
    if missing or extra:
        what = "missing " + ", ".join(missing[:3]) if missing else "unknown " + ", ".join(extra[:3])
        raise ValueError(f"{name}: layers: expected the baseline's {len(base_names)} layers, got {len(names)} ({what})")
    for (n, key), (_, base_key) in zip(ours, theirs):
        if key != base_key:
            raise ValueError(f"{name}: layers.{n}: expected layer type {base_key}, got {key}")
    raise ValueError(f"{name}: layers: expected the baseline's layer order {', '.join(base_names[:4])}, ...")


def select(
    configs: Sequence[NetConfig],
    table: LatencyTable,
    baseline: NetConfig,
    latency_target: int | None = None,
    max_accuracy_drop_pp: float | None = None,
) -> Scored:
    """Pick one configuration, as the paper does after the heuristic (Sec. II, Table I).

    Exactly one criterion: ``latency_target`` (cycles) → the most accurate config at or under it (ties: faster);
    ``max_accuracy_drop_pp`` → the fastest config whose accuracy is within that many percentage points of the
    baseline's (ties: more accurate). The baseline itself is always a candidate.

    Raises:
        ValueError: with the fastest latency on offer, when no configuration meets the latency target; when a
            configuration's layers are not the baseline's (:func:`check_same_network`).
    """
    if (latency_target is None) == (max_accuracy_drop_pp is None):
        raise ValueError("give exactly one of latency_target or max_accuracy_drop_pp")
    for i, cfg in enumerate(configs):
        check_same_network(cfg, baseline, f"config #{i} ({cfg.provenance.get('method')})")
    scored = score([baseline, *configs], table)
    if latency_target is not None:
        fits = [s for s in scored if s.latency <= latency_target]
        if not fits:
            fastest = min(s.latency for s in scored)
            raise ValueError(f"no configuration meets the latency target {latency_target} (fastest: {fastest})")
        return max(fits, key=lambda s: (s.accuracy, -s.latency))
    assert max_accuracy_drop_pp is not None  # exactly one of the two was given
    floor = scored[0].accuracy - max_accuracy_drop_pp / 100.0
    fits = [s for s in scored if s.accuracy >= floor - 1e-12]
    return min(fits, key=lambda s: (s.latency, -s.accuracy))


def homogeneous(net: NetConfig, bits: int | tuple[int, int]) -> NetConfig:
    """``net`` with every searchable pair set to ``bits`` (an int or (b_in, b_wt)).

    Fixed inputs keep their b_in, and the first layer (it reads the 8-bit image) stays as it is: it is (8, 8)
    in every shipped configuration, as in the paper.

    Example:
        >>> from fb_schema.topologies import tinynet
        >>> [str(l.precision) for l in homogeneous(NetConfig.homogeneous(tinynet(), 8, 8), 4).layers]
        ['8b/8b', '4b/4b', '8b/-', '8b/-', '4b/4b']
    """
    b_in, b_wt = (bits, bits) if isinstance(bits, int) else bits
    new = {
        layer.name: Precision(layer.b_in if layer.b_in_fixed else b_in, b_wt)
        for layer in net.layers[1:]
        if layer.b_wt is not None
    }
    return net.with_precisions(new, method="homogeneous", parent=net.sha256(), bits=[b_in, b_wt])


def hypervolume(points: Sequence[tuple[float, float]], reference: tuple[float, float]) -> float:
    """Area dominated by (latency, accuracy) points — lower latency, higher accuracy — up to ``reference``.

    ``reference`` is (worst latency, worst accuracy); points outside it add nothing. A larger value means a
    better front; compare fronts only with the same reference point.

    Example:
        >>> hypervolume([(1.0, 0.9), (2.0, 0.95)], reference=(3.0, 0.5))
        0.85
    """
    ref_lat, ref_acc = reference
    inside = sorted((lat, acc) for lat, acc in points if lat < ref_lat and acc > ref_acc)
    area, best_acc = 0.0, ref_acc
    for i, (lat, acc) in enumerate(inside):
        best_acc = max(best_acc, acc)
        next_lat = inside[i + 1][0] if i + 1 < len(inside) else ref_lat
        area += (next_lat - lat) * (best_acc - ref_acc)
    return area
