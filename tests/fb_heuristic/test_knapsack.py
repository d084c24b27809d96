"""The latency-budget optimizer against brute force, and its guarantees."""

import itertools
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fb_heuristic import knapsack, knapsack_front, network_latency
from fb_schema import LatencyTable, NetConfig, Precision, Target, all_pairs
from fb_schema.topologies import tinynet

BITS = (2, 4, 8)


def _instance(latencies: list[int], costs: list[float]):
    """tinynet (3 searchable layers: conv0 with fixed input, dw1, fc) with given latencies and sensitivities."""
    base = NetConfig.homogeneous(tinynet(), 8, 8)
    lat_iter, cost_iter = iter(latencies), iter(costs)
    entries, sens = {}, {}
    for layer in base.layers:
        if layer.b_wt is None:
            entries[(layer.layer_type, 8, None)] = 7
            continue
        sens[layer.name] = {}
        for p in all_pairs(BITS):
            entries[(layer.layer_type, p.b_in, p.b_wt)] = next(lat_iter)
            sens[layer.name][f"{p.b_in},{p.b_wt}"] = next(cost_iter)
    net = NetConfig(base.network, base.layer_types, base.layers, base.provenance, {"sensitivity": sens})
    return net, LatencyTable(Target("t", "xpulpv2"), net.layer_types, entries)


def _brute_force(net, table, budget, locked=False):
    options = []
    for layer in net.layers:
        if layer.b_wt is None:
            continue
        pairs = [p for p in all_pairs(BITS) if not layer.b_in_fixed or p.b_in == layer.b_in]
        if locked and not layer.b_in_fixed:
            pairs = [p for p in pairs if p.b_in == p.b_wt]
        options.append([(layer.name, p) for p in pairs])
    best = None
    for combo in itertools.product(*options):
        cfg = net.with_precisions(dict(combo))
        if network_latency(cfg, table) > budget:
            continue
        cost = sum(net.metrics["sensitivity"][n][f"{p.b_in},{p.b_wt}"] for n, p in combo)
        best = cost if best is None else min(best, cost)
    return best


lat = st.lists(st.integers(1, 40), min_size=27, max_size=27)
cost = st.lists(st.integers(0, 20).map(float), min_size=27, max_size=27)


@settings(max_examples=60, deadline=None)
@given(lat, cost, st.integers(0, 140), st.booleans())
def test_exact_with_one_cycle_bins_equals_brute_force(latencies, costs, budget, locked):
    net, table = _instance(latencies, costs)
    expected = _brute_force(net, table, budget, locked)
    if expected is None:
        with pytest.raises(ValueError, match="no assignment fits"):
            knapsack(net, table, budget, bins=None, locked=locked)
        return
    result = knapsack(net, table, budget, bins=None, locked=locked)
    assert result.cost == expected
    assert result.latency == network_latency(result.config, table) <= budget
    assert result.config.provenance["method"] == "knapsack"
    if locked:
        assert all(l.b_in == l.b_wt for l in result.config.layers if l.b_wt is not None and not l.b_in_fixed)


@settings(max_examples=40, deadline=None)
@given(lat, cost, st.integers(20, 140), st.integers(1, 16))
def test_binned_result_fits_and_is_within_the_stated_bound(latencies, costs, budget, bins):
    net, table = _instance(latencies, costs)
    n_layers, fixed = 3, 14  # add1 and pool cost 7 cycles each
    try:
        result = knapsack(net, table, budget, bins=bins)
    except ValueError:
        # Coarse bins may reject a tight budget, but only if nothing fits budget − n·w.
        width = max(1, -(-(budget - fixed) // bins))
        assert _brute_force(net, table, budget - n_layers * width) is None
        return
    assert result.latency <= budget
    relaxed = _brute_force(net, table, budget - n_layers * result.bin_cycles)
    if relaxed is not None:
        assert result.cost <= relaxed  # no worse than the best assignment of budget − n·w
    assert result.cost >= _brute_force(net, table, budget)  # and never better than the exact optimum


def test_front_is_monotone_and_keeps_fixed_fields():
    net, table = _instance(list(range(1, 28)), [float(27 - i) for i in range(27)])
    front = knapsack_front(net, table, 200, bins=None)
    assert len(front) >= 3
    assert all(a.latency < b.latency and a.cost > b.cost for a, b in zip(front, front[1:]))
    for r in front:
        assert r.config.layer("conv0").b_in == 8
        assert r.config.layer("add1").precision == Precision(8, None)


def test_missing_sensitivity_names_layer_and_pair():
    net, table = _instance([5] * 27, [1.0] * 27)
    del net.metrics["sensitivity"]["dw1"]["4,2"]
    with pytest.raises(KeyError, match=r"metrics.sensitivity.dw1: no entry for pair 4,2"):
        knapsack(net, table, 1000, bins=None)


def test_cli_knapsack(tmp_path):
    from click.testing import CliRunner

    from fb_heuristic._cli import main

    net, table = _instance(list(range(1, 28)), [float(27 - i) for i in range(27)])
    net.save(tmp_path / "c.json")
    table.save(tmp_path / "t.json")
    runner = CliRunner()
    args = ["knapsack", str(tmp_path / "c.json"), str(tmp_path / "t.json"), "-o", str(tmp_path / "k.json")]
    result = runner.invoke(main, [*args, "--budget", "60", "--exact", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["latency"] <= 60 and out["cost"] == knapsack(net, table, 60, bins=None).cost
    assert NetConfig.load(tmp_path / "k.json").provenance["method"] == "knapsack"
    bad = runner.invoke(main, [*args, "--budget", "1"])
    assert bad.exit_code != 0 and "no assignment fits the latency budget 1 cycles" in bad.output
    assert "Traceback" not in bad.output


def test_hypervolume_hand_computed():
    from fb_heuristic import hypervolume

    ref = (10.0, 0.0)
    assert hypervolume([], ref) == 0.0
    assert hypervolume([(2.0, 0.5)], ref) == pytest.approx(8 * 0.5)
    # A dominated point adds nothing; a point beyond the reference adds nothing.
    assert hypervolume([(2.0, 0.5), (3.0, 0.4), (11.0, 0.9)], ref) == pytest.approx(4.0)
    # Two-step staircase: [2, 5) at 0.5, [5, 10) at 0.8.
    assert hypervolume([(2.0, 0.5), (5.0, 0.8)], ref) == pytest.approx(3 * 0.5 + 5 * 0.8)


def test_layers_without_sensitivities_keep_their_pair():
    net, table = _instance(list(range(1, 28)), [float(27 - i) for i in range(27)])
    del net.metrics["sensitivity"]["conv0"]
    result = knapsack(net, table, 1000, bins=None)
    assert result.config.layer("conv0").precision == net.layer("conv0").precision
    assert result.latency == network_latency(result.config, table)
