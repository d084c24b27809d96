"""The free-bits heuristic: Algorithm 1 of Rutishauser et al., "Free Bits" (arXiv 2307.02894)."""

from __future__ import annotations

from collections.abc import Iterable

from fb_schema import LatencyTable, LayerConfig, MissingLatencyError, NetConfig, Precision, all_pairs

ON_MISSING = ("error", "keep", "unavailable")


def best_pair(
    current: Precision, latency: dict[Precision, int], allowed: Iterable[Precision], b_in_fixed: bool = False
) -> Precision:
    """The fastest allowed pair that is at least as precise as ``current`` and no slower than it.

    Ties go to more total bits, then more weight bits (more accuracy at equal latency). ``latency`` must hold
    ``current`` and every candidate.

    Example:
        >>> lat = {Precision(4, 4): 100, Precision(8, 4): 120, Precision(4, 8): 90, Precision(8, 8): 90}
        >>> best_pair(Precision(4, 4), lat, lat)
        Precision(b_in=8, b_wt=8)
    """
    lat0 = latency[current]
    candidates = [
        p for p in allowed if p.higher(current) and (not b_in_fixed or p.b_in == current.b_in) and latency[p] <= lat0
    ]
    candidates.append(current)
    return min(candidates, key=lambda p: (latency[p], -p.total_bits, -(p.b_wt or 0)))


def free_bits(
    net: NetConfig,
    table: LatencyTable,
    allowed: Iterable[int] | None = None,
    on_missing: str = "error",
) -> NetConfig:
    """Apply the free-bits heuristic to every layer of ``net`` independently.

    Each configurable layer moves to the pair that is ``higher()`` than its own (never less precise) with the
    lowest profiled latency not above its own (never slower). Fixed inputs and add/avgpool never change.

    Args:
        net: the configuration to improve.
        table: latencies of the target (the paper's LD).
        allowed: bit widths the result may use (default: the table's ``allowed_bits``).
        on_missing: ``"error"`` raises MissingLatencyError naming the key and pair; ``"keep"`` leaves a layer
            with any missing entry unchanged; ``"unavailable"`` reads a pair missing from the table as one the
            target cannot run (a kernel that fails there): no layer moves to it, and a layer whose own pair is
            unavailable moves to the fastest available pair ``higher()`` than it (the only way to make it
            deployable). A layer with no such pair (or an add/pool without an entry) leaves the result not
            deployable on the target: its ``metrics.latency`` has no entry for the target.

    Returns:
        A new NetConfig with provenance ``method="fb"``, the parent's and the table's sha256, and its latency.
        With ``"unavailable"``, provenance ``raised_unavailable`` maps each layer moved off an unavailable pair
        to ``[from, to]`` and ``not_deployable`` lists the layers left on one (both only when non-empty).

    Example:
        >>> from fb_schema import LatencyTable, Target
        >>> from fb_schema.topologies import tinynet
        >>> net = NetConfig.homogeneous(tinynet(), 4, 4)
        >>> lat = lambda key, a, w: 100 if (a, w) == (8, 8) else 150  # 8b/8b is the fastest pair everywhere
        >>> entries = {(k, a, w): lat(k, a, w) for k, t in net.layer_types.items()
        ...            for a in (2, 4, 8) for w in ((2, 4, 8) if t.configurable else (None,))}
        >>> table = LatencyTable(Target("demo", "xpulpv2"), net.layer_types, entries)
        >>> [str(l.precision) for l in free_bits(net, table).layers]
        ['8b/8b', '8b/8b', '8b/-', '8b/-', '8b/8b']
    """
    if on_missing not in ON_MISSING:
        raise ValueError(f"on_missing must be one of {ON_MISSING}, got {on_missing!r}")
    bits = tuple(sorted(allowed)) if allowed is not None else table.target.allowed_bits
    pairs = all_pairs(bits)
    if on_missing == "unavailable":
        return _free_bits_available(net, table, pairs)
    new: dict[str, Precision] = {}
    for layer in net.layers:
        if layer.b_wt is None:
            continue
        pair = _layer_pair(layer, net.layer_types[layer.layer_type].key, pairs, table, on_missing)
        if pair is not None:
            new[layer.name] = pair
    result = net.with_precisions(
        new, method="fb", parent=net.sha256(), table_sha256=table.sha256(), target=table.target.name
    )
    total = network_latency(result, table, on_missing)
    return _with_latency(result, table.target.name, total)


def _layer_pair(
    layer: LayerConfig, key: str, pairs: list[Precision], table: LatencyTable, on_missing: str
) -> Precision | None:
    """Algorithm 1 for one layer; None where ``on_missing="keep"`` keeps it (an entry it needs is missing)."""
    needed = [layer.precision] + [
        p
        for p in pairs
        if p.higher(layer.precision) and p != layer.precision and not (layer.b_in_fixed and p.b_in != layer.b_in)
    ]
    latency = {}
    for p in needed:
        if table.has(key, p):
            latency[p] = table.latency(key, p)
        elif on_missing == "error":
            raise MissingLatencyError(key, p.b_in, p.b_wt, f"latency table {table.target.name}")
    if len(latency) < len(needed):
        return None
    return best_pair(layer.precision, latency, needed[1:], layer.b_in_fixed)


def _free_bits_available(net: NetConfig, table: LatencyTable, pairs: list[Precision]) -> NetConfig:
    """Algorithm 1 over the pairs in ``table`` only (``on_missing="unavailable"``)."""
    new: dict[str, Precision] = {}
    raised: dict[str, list[str]] = {}
    stuck: list[str] = []
    for layer in net.layers:
        key = net.layer_types[layer.layer_type].key
        if layer.b_wt is None:
            if not table.has(key, layer.precision):
                stuck.append(layer.name)  # adds and pools have no other pair
            continue
        latency = {
            p: table.latency(key, p)
            for p in pairs
            if p.higher(layer.precision) and not (layer.b_in_fixed and p.b_in != layer.b_in) and table.has(key, p)
        }
        if layer.precision in latency:
            new[layer.name] = best_pair(layer.precision, latency, latency, layer.b_in_fixed)
        elif latency:  # its own pair cannot run: the fastest that can (ties as in best_pair)
            to = min(latency, key=lambda p: (latency[p], -p.total_bits, -(p.b_wt or 0)))
            new[layer.name] = to
            raised[layer.name] = [str(layer.precision), str(to)]
        else:
            stuck.append(layer.name)
    extra: dict[str, object] = {"on_missing": "unavailable"}
    if raised:
        extra["raised_unavailable"] = raised
    if stuck:
        extra["not_deployable"] = stuck
    result = net.with_precisions(
        new, method="fb", parent=net.sha256(), table_sha256=table.sha256(), target=table.target.name, **extra
    )
    return _with_latency(result, table.target.name, deployable_latency(result, table))


def deployable_latency(net: NetConfig, table: LatencyTable) -> int | None:
    """The network latency on ``table``'s target, or None when a layer's pair is not in the table.

    A pair missing from a target's table (or listed under its ``failed``) is one the target cannot run, so a
    config using it is not deployable there.

    Example:
        >>> from fb_schema import Target
        >>> from fb_schema.topologies import tinynet
        >>> net = NetConfig.homogeneous(tinynet(), 8, 8)
        >>> entries = {(l.layer_type, l.b_in, l.b_wt): 10 for l in net.layers}
        >>> table = LatencyTable(Target("demo", "xpulpv2"), net.layer_types, entries)
        >>> deployable_latency(net, table), deployable_latency(NetConfig.homogeneous(tinynet(), 4, 4), table)
        (50, None)
    """
    try:
        return network_latency(net, table)
    except MissingLatencyError:
        return None


def network_latency(net: NetConfig, table: LatencyTable, on_missing: str = "error") -> int:
    """Network latency under layer-by-layer execution: the sum of every layer's table entry (adds and pools too).

    With ``on_missing="keep"`` layers without an entry count as 0 (the caller asked to skip them); otherwise
    (``"error"``, ``"unavailable"``) a missing entry raises MissingLatencyError (see :func:`deployable_latency`).

    Example:
        >>> from fb_schema import LayerType, Target
        >>> from fb_schema.topologies import tinynet
        >>> net = NetConfig.homogeneous(tinynet(), 8, 8)
        >>> entries = {(l.layer_type, l.b_in, l.b_wt): 10 for l in net.layers}
        >>> network_latency(net, LatencyTable(Target("demo", "xpulpv2"), net.layer_types, entries))
        50
    """
    total = 0
    for layer in net.layers:
        key = net.layer_types[layer.layer_type].key
        if on_missing == "keep" and not table.has(key, layer.precision):
            continue
        total += table.latency(key, layer.precision)
    return total


def _with_latency(net: NetConfig, target: str, cycles: int | None) -> NetConfig:
    metrics = dict(net.metrics)
    metrics["latency"] = {**metrics.get("latency", {}), target: cycles}
    if cycles is None:  # not deployable on the target: no latency (provenance.not_deployable says why)
        del metrics["latency"][target]
    metrics["bops"] = net.bops()
    return NetConfig(net.network, net.layer_types, net.layers, net.provenance, metrics)
