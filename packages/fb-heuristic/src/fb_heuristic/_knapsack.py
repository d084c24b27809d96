"""Latency-budget optimizer: the most accurate precision assignment that fits a latency budget.

A multiple-choice knapsack over layers (pick one pair per layer; minimize total sensitivity; total latency ≤
budget), solved by dynamic programming over a latency axis in bins. Item latencies are rounded *up* to whole
bins, so every answer really fits the budget. With 1-cycle bins it is exact; with bins of width ``w`` cycles
its cost is at most that of the best assignment fitting ``budget − n·w`` (n = number of searchable layers).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from fb_schema import LatencyTable, NetConfig, Precision, all_pairs

INF = math.inf
MAX_MEMORY = 2 << 30  # bytes the DP tables may take (one Python float slot is about CELL_BYTES)
CELL_BYTES = 32


@dataclass(frozen=True)
class KnapsackResult:
    """One optimal assignment: the config, its true latency and its total sensitivity."""

    config: NetConfig
    latency: int
    cost: float
    bin_cycles: int


def sensitivity_of(net: NetConfig, layer: str, p: Precision) -> float:
    """``metrics.sensitivity[layer]["b_in,b_wt"]`` (estimated accuracy cost of running ``layer`` at ``p``)."""
    try:
        return float(net.metrics["sensitivity"][layer][f"{p.b_in},{p.b_wt}"])
    except KeyError:
        raise KeyError(f"metrics.sensitivity.{layer}: no entry for pair {p.b_in},{p.b_wt}") from None


def _choices(net: NetConfig, table: LatencyTable, bits: Iterable[int], locked: bool):
    """Per searchable layer, the allowed (pair, latency, sensitivity) options; plus the fixed latency."""
    fixed_latency, items = 0, []
    for layer in net.layers:
        key = net.layer_types[layer.layer_type].key
        if layer.b_wt is None or layer.name not in net.metrics.get("sensitivity", {}):
            # Non-configurable layers, and layers the search does not vary (no sensitivities, e.g. the first
            # layer at 8b/8b), keep their pair.
            fixed_latency += table.latency(key, layer.precision)
            continue
        options = []
        for p in all_pairs(tuple(bits)):
            if layer.b_in_fixed and p.b_in != layer.b_in:
                continue
            if locked and not layer.b_in_fixed and p.b_in != p.b_wt:
                continue
            options.append((p, table.latency(key, p), sensitivity_of(net, layer.name, p)))
        items.append((layer.name, _undominated(options)))
    return fixed_latency, items


def _undominated(options):
    """Drop options another one beats in both latency and sensitivity (they can never be optimal)."""
    keep, best_cost = [], INF
    for p, lat, cost in sorted(options, key=lambda o: (o[1], o[2])):
        if cost < best_cost:
            keep.append((p, lat, cost))
            best_cost = cost
    return keep


def _solve(items, capacity_bins: int, width: int):
    """DP tables: ``tables[i][b]`` = least cost of layers < i within b bins (non-increasing in b)."""
    tables = [[0.0] * (capacity_bins + 1)]
    for _, options in items:
        prev = tables[-1]
        best = [INF] * (capacity_bins + 1)
        for _, lat, cost in options:
            c = -(-lat // width)  # ceil: rounding up keeps every answer within the budget
            if c > capacity_bins:
                continue
            shifted = [INF] * c + [x + cost for x in prev[: capacity_bins + 1 - c]]
            best = [a if a <= b else b for a, b in zip(best, shifted)]
        tables.append(best)
    return tables


def _backtrack(items, tables, b: int, width: int) -> dict[str, Precision]:
    chosen = {}
    for i in range(len(items) - 1, -1, -1):
        name, options = items[i]
        target = tables[i + 1][b]
        for p, lat, cost in options:
            c = -(-lat // width)
            if c <= b and tables[i][b - c] + cost == target:
                chosen[name], b = p, b - c
                break
    return chosen


def knapsack_front(
    net: NetConfig,
    table: LatencyTable,
    max_budget: int,
    bins: int | None = 4096,
    allowed: Iterable[int] | None = None,
    locked: bool = False,
    max_memory: int = MAX_MEMORY,
) -> list[KnapsackResult]:
    """The whole accuracy/latency front up to ``max_budget`` cycles from one DP pass, fastest first.

    Args:
        net: a config whose ``metrics.sensitivity`` covers every allowed pair of each layer it lists; layers it
            does not list keep their pair.
        table: the target's latencies.
        max_budget: the largest total latency (cycles) of interest.
        bins: number of latency bins; ``None`` = 1-cycle bins (exact).
        allowed: bit widths (default: the table's ``allowed_bits``).
        locked: only pairs with b_in == b_wt for layers whose input is searchable.
        max_memory: bytes the DP tables may take; a larger problem is refused with the memory it needs
            (the latency axis never extends past the slowest assignment, so huge budgets stay cheap).

    Example:
        >>> from fb_schema import Target
        >>> from fb_schema.topologies import tinynet
        >>> base = NetConfig.homogeneous(tinynet(), 8, 8)
        >>> sens = {l.name: {f"{a},{w}": (8 - a) + (8 - w) for a in (2, 4, 8) for w in (2, 4, 8)}
        ...         for l in base.layers if l.b_wt is not None}
        >>> net = NetConfig(base.network, base.layer_types, base.layers, base.provenance, {"sensitivity": sens})
        >>> entries = {(l.layer_type, a, w): (a + (w or 0)) * 10 for l in net.layers for a in (2, 4, 8)
        ...            for w in ((2, 4, 8) if l.b_wt is not None else (None,))}
        >>> table = LatencyTable(Target("demo", "xpulpv2"), net.layer_types, entries)
        >>> [(r.latency, r.cost) for r in knapsack_front(net, table, 600, bins=None)][:2]
        [(340, 30.0), (360, 28.0)]
    """
    solved = _prepare(net, table, max_budget, bins, allowed, locked, max_memory)
    if solved is None:
        return []
    items, tables, width, provenance = solved
    front, last_cost = [], INF
    for b, cost in enumerate(tables[-1]):
        if cost < last_cost:
            front.append(_result(net, table, items, tables, b, width, provenance))
            last_cost = cost
    return front


def _check_memory(layers: int, cells: int, width: int, limit: int) -> None:
    need = (layers + 1) * cells * CELL_BYTES
    if need > limit:
        raise ValueError(
            f"knapsack: {layers} layers x {cells:,} latency bins of {width} cycle(s) need about "
            f"{need / 2**30:.1f} GiB (limit {limit / 2**30:.1f} GiB); use fewer bins or a smaller budget"
        )


def _prepare(net, table, max_budget, bins, allowed, locked, max_memory):
    bits = tuple(sorted(allowed)) if allowed is not None else table.target.allowed_bits
    fixed_latency, items = _choices(net, table, bits, locked)
    free = max_budget - fixed_latency
    if free < 0:
        return None
    # A budget beyond the slowest assignment constrains nothing: the latency axis need not reach past it.
    slowest = [max(lat for _, lat, _ in options) for _, options in items]
    width = 1 if bins is None else max(1, math.ceil(min(free, sum(slowest)) / bins))
    capacity = min(free // width, sum(-(-lat // width) for lat in slowest))
    _check_memory(len(items), capacity + 1, width, max_memory)
    tables = _solve(items, capacity, width)
    provenance = {
        "method": "knapsack",
        "parent": net.sha256(),
        "table_sha256": table.sha256(),
        "bin_cycles": width,
        "locked": locked,
    }
    return items, tables, width, provenance


def _result(net, table, items, tables, b, width, provenance) -> KnapsackResult:
    config = net.with_precisions(_backtrack(items, tables, b, width), **provenance)
    latency = sum(table.latency(config.layer_types[l.layer_type].key, l.precision) for l in config.layers)
    return KnapsackResult(config, latency, tables[-1][b], width)


def knapsack(
    net: NetConfig,
    table: LatencyTable,
    budget: int,
    bins: int | None = 4096,
    allowed: Iterable[int] | None = None,
    locked: bool = False,
    max_memory: int = MAX_MEMORY,
) -> KnapsackResult:
    """The least-sensitivity assignment with total latency ≤ ``budget`` (see :func:`knapsack_front`).

    Raises:
        ValueError: if even the fastest assignment exceeds the budget, or the DP would need more than
            ``max_memory`` bytes.
    """
    solved = _prepare(net, table, budget, bins, allowed, locked, max_memory)
    if solved is None or solved[1][-1][-1] == INF:
        raise ValueError(f"no assignment fits the latency budget {budget} cycles")
    items, tables, width, provenance = solved
    return _result(net, table, items, tables, len(tables[-1]) - 1, width, provenance)
