"""Property tests of the free-bits heuristic on random latency tables and random configurations."""

import dataclasses
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fb_heuristic import free_bits, network_latency
from fb_schema import LatencyTable, LayerConfig, NetConfig, Precision, Target, all_pairs
from fb_schema.topologies import digitsnet, mobilenetv2, tinynet

TOPOLOGIES = {
    "tinynet": tinynet(),
    "digitsnet": digitsnet(),
    "mnv2-slice": mobilenetv2(0.35, 32),
}
BIT_SETS = [(2, 4, 8), (4, 8), (2, 3, 4, 5, 6, 8)]
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _net(name: str, rng: random.Random, bits: tuple[int, ...]) -> NetConfig:
    """A random configuration; fixed inputs stay at 8 bits, add/avgpool get a random b_in and no b_wt."""
    topo = TOPOLOGIES[name]
    base = NetConfig.homogeneous(topo, 8, 8)
    layers = base.layers[:16] if name == "mnv2-slice" else base.layers
    out = []
    for layer in layers:
        b_in = 8 if layer.b_in_fixed and layer.b_wt is not None else rng.choice(bits)
        b_wt = None if layer.b_wt is None else rng.choice(bits)
        out.append(LayerConfig(layer.name, layer.layer_type, b_in, b_wt, layer.b_in_fixed))
    types = {lc.layer_type: base.layer_types[lc.layer_type] for lc in out}
    return NetConfig(base.network, types, tuple(out), {"method": "manual", "parent": None})


def _table(net: NetConfig, rng: random.Random, bits: tuple[int, ...], top: int, monotone: bool = False):
    entries = {}
    for key, t in net.layer_types.items():
        if monotone:
            base, ca, cw, cx = (rng.randint(1, 1000), rng.randint(1, 50), rng.randint(1, 50), rng.randint(0, 5))
        for a in bits:
            for w in bits if t.configurable else (None,):
                if monotone:  # strictly increasing in b_in and in b_wt
                    entries[(key, a, w)] = base + ca * a + cw * (w or 0) + cx * a * (w or 0)
                else:  # small ranges make ties frequent
                    entries[(key, a, w)] = rng.randint(0, top)
    return LatencyTable(Target("rand", "xpulpnn1", allowed_bits=bits), net.layer_types, entries)


cases = st.tuples(
    st.sampled_from(sorted(TOPOLOGIES)),
    st.sampled_from(BIT_SETS),
    st.integers(0, 2**32 - 1),
    st.sampled_from([2, 5, 50, 10**6]),
)


def _draw(case, monotone=False):
    name, bits, seed, top = case
    rng = random.Random(seed)
    net = _net(name, rng, bits)
    return net, _table(net, rng, bits, top, monotone)


def _lat(table, net, layer):
    return table.latency(net.layer_types[layer.layer_type].key, layer.precision)


def _reference(net: NetConfig, table: LatencyTable) -> list[Precision]:
    """Algorithm 1 written out independently: filter, then argmin (latency, -total bits, -weight bits)."""
    out = []
    for layer in net.layers:
        p0 = layer.precision
        if layer.b_wt is None:
            out.append(p0)
            continue
        key = layer.layer_type
        lat0 = table.entries[(key, p0.b_in, p0.b_wt)]
        best, best_rank = p0, (lat0, -(p0.b_in + p0.b_wt), -p0.b_wt)
        for p in all_pairs(table.target.allowed_bits):
            if p.b_in < p0.b_in or p.b_wt < p0.b_wt or (layer.b_in_fixed and p.b_in != p0.b_in):
                continue
            lat = table.entries[(key, p.b_in, p.b_wt)]
            rank = (lat, -(p.b_in + p.b_wt), -p.b_wt)
            if lat <= lat0 and rank < best_rank:
                best, best_rank = p, rank
        out.append(best)
    return out


@SETTINGS
@given(cases)
def test_matches_an_independent_implementation(case):
    net, table = _draw(case)
    assert [lc.precision for lc in free_bits(net, table).layers] == _reference(net, table)


@SETTINGS
@given(cases)
def test_never_lowers_b_in_or_b_wt(case):
    net, table = _draw(case)
    out = free_bits(net, table)
    for before, after in zip(net.layers, out.layers):
        assert after.b_in >= before.b_in
        if before.b_wt is None:
            assert after.b_wt is None
        else:
            assert after.b_wt >= before.b_wt
        assert after.precision.higher(before.precision)


@SETTINGS
@given(cases)
def test_never_raises_a_layer_latency(case):
    net, table = _draw(case)
    out = free_bits(net, table)
    for before, after in zip(net.layers, out.layers):
        assert _lat(table, out, after) <= _lat(table, net, before)
    assert network_latency(out, table) <= network_latency(net, table)
    assert out.metrics["latency"]["rand"] == network_latency(out, table)


@SETTINGS
@given(cases)
def test_idempotent(case):
    net, table = _draw(case)
    once = free_bits(net, table)
    twice = free_bits(once, table)
    assert twice.layers == once.layers
    assert twice.metrics["latency"] == once.metrics["latency"]


@SETTINGS
@given(cases)
def test_identity_on_monotone_tables(case):
    net, table = _draw(case, monotone=True)
    out = free_bits(net, table)
    assert out.layers == net.layers
    assert network_latency(out, table) == network_latency(net, table)


@SETTINGS
@given(cases, st.randoms(use_true_random=False))
def test_permuting_layers_permutes_the_result(case, rnd):
    net, table = _draw(case)
    order = list(range(len(net.layers)))
    rnd.shuffle(order)
    permuted = dataclasses.replace(net, layers=tuple(net.layers[i] for i in order))
    out = free_bits(net, table)
    out_permuted = free_bits(permuted, table)
    assert out_permuted.layers == tuple(out.layers[i] for i in order)
    assert network_latency(out_permuted, table) == network_latency(out, table)


@SETTINGS
@given(cases)
def test_fixed_fields_untouched(case):
    net, table = _draw(case)
    out = free_bits(net, table)
    assert out.network == net.network
    assert out.layer_types == net.layer_types
    assert len(out.layers) == len(net.layers)
    for before, after in zip(net.layers, out.layers):
        assert (after.name, after.layer_type, after.b_in_fixed) == (before.name, before.layer_type, before.b_in_fixed)
        if before.b_in_fixed:
            assert after.b_in == before.b_in
        if before.b_wt is None:  # add, avgpool
            assert after == before


@SETTINGS
@given(cases, st.sampled_from([(8,), (4, 8), (2, 8)]))
def test_allowed_restricts_the_result(case, allowed):
    net, table = _draw(case)
    out = free_bits(net, table, allowed=allowed)
    for before, after in zip(net.layers, out.layers):
        if after != before:
            assert after.b_in in allowed and after.b_wt in allowed
            assert _lat(table, out, after) <= _lat(table, net, before)
