"""Regression tests: the knapsack's memory stays bounded; selection refuses configs of another network."""

import dataclasses

import pytest
from click.testing import CliRunner

from fb_heuristic import knapsack, select
from fb_heuristic._cli import main
from fb_schema import LatencyTable, NetConfig, Target, all_pairs
from fb_schema.topologies import tinynet


def _instance(scale: int):
    """tinynet with sensitivities, every latency ``scale`` times a small number."""
    base = NetConfig.homogeneous(tinynet(), 8, 8)
    entries, sens = {}, {}
    for i, layer in enumerate(base.layers):
        if layer.b_wt is None:
            entries[(layer.layer_type, 8, None)] = 7 * scale
            continue
        sens[layer.name] = {f"{p.b_in},{p.b_wt}": float(16 - p.b_in - p.b_wt) for p in all_pairs((2, 4, 8))}
        for p in all_pairs((2, 4, 8)):
            entries[(layer.layer_type, p.b_in, p.b_wt)] = (i + 1) * (p.b_in + p.b_wt) * scale
    net = NetConfig(base.network, base.layer_types, base.layers, base.provenance, {"sensitivity": sens})
    return net, LatencyTable(Target("t", "xpulpv2"), net.layer_types, entries)


def test_exact_knapsack_with_a_huge_budget_needs_no_huge_memory():
    net, table = _instance(1)
    result = knapsack(net, table, 1_000_000_000, bins=None)  # the old DP allocated a billion cells per layer
    assert result.cost == 0.0 and result.latency <= 1_000_000_000
    assert all(layer.b_in_fixed or (layer.b_in, layer.b_wt) in ((8, 8), (8, None)) for layer in result.config.layers)


def test_knapsack_refuses_with_the_memory_it_would_need(tmp_path):
    net, table = _instance(10_000_000)  # ~10^8-cycle layers: 1-cycle bins cannot fit in memory
    with pytest.raises(
        ValueError, match=r"knapsack: 3 layers x [\d,]+ latency bins of 1 cycle\(s\) need about [\d.]+ GiB"
    ):
        knapsack(net, table, 10**10, bins=None)
    net.save(tmp_path / "n.json")
    table.save(tmp_path / "t.json")
    r = CliRunner().invoke(main, ["knapsack", str(tmp_path / "n.json"), str(tmp_path / "t.json"), "-o",
                                  str(tmp_path / "o.json"), "--budget", "1000000000", "--exact"])  # fmt: skip
    assert r.exit_code == 1 and "GiB (limit 2.0 GiB); use fewer bins" in r.output, r.output
    assert knapsack(net, table, 10**10, bins=4096).cost == 0.0  # binned: fine


def _partial(net: NetConfig, n: int) -> NetConfig:
    layers = net.layers[:n]
    types = {layer.layer_type: net.layer_types[layer.layer_type] for layer in layers}
    return dataclasses.replace(net, layer_types=types, layers=layers, metrics={"val_accuracy": 0.95})


def test_select_rejects_a_config_without_the_baselines_layers(tmp_path):
    net, table = _instance(1)
    base = dataclasses.replace(net, metrics={"val_accuracy": 0.9})
    part = _partial(net, 3)
    with pytest.raises(ValueError, match=r"config #0 .*: layers: expected the baseline's 5 layers, got 3 \(missing"):
        select([part], table, base, max_accuracy_drop_pp=1.0)
    base.save(tmp_path / "base.json")
    part.save(tmp_path / "part.json")
    table.save(tmp_path / "t.json")
    r = CliRunner().invoke(main, ["select", str(tmp_path / "part.json"), "--table", str(tmp_path / "t.json"),
                                  "--baseline", str(tmp_path / "base.json"), "--max-accuracy-drop", "1"])  # fmt: skip
    assert r.exit_code == 1
    assert r.output.startswith(f"Error: {tmp_path / 'part.json'}: layers: expected the baseline's 5 layers, got 3")


def test_select_rejects_a_layer_of_another_type():
    net, table = _instance(1)
    base = dataclasses.replace(net, metrics={"val_accuracy": 0.9})
    other = NetConfig.homogeneous(tinynet(), 8, 8)
    key0 = other.layers[0].layer_type
    swapped = dataclasses.replace(other.layers[0], layer_type=other.layers[-1].layer_type)
    odd = dataclasses.replace(other, layers=[swapped, *other.layers[1:]], metrics={"val_accuracy": 0.95})
    assert odd.layers[0].layer_type != key0
    with pytest.raises(ValueError, match=r"layers\.conv0: expected layer type conv2d_"):
        select([odd], table, base, max_accuracy_drop_pp=1.0)
