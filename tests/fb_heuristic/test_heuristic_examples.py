"""Worked examples with hand-computed answers: free bits, network latency, provenance, selection, diff."""

import dataclasses

import pytest

from fb_heuristic import best_pair, diff, format_diff, free_bits, homogeneous, network_latency, pareto_front, select
from fb_schema import LatencyTable, LayerConfig, LayerType, MissingLatencyError, NetConfig, Precision, Target
from fb_schema.topologies import tinynet

FC = LayerType.linear(64, 10)
K = FC.key

# XpulpV2-like: no sub-byte SIMD, so 8b/8b is the fastest pair and lower precisions only add unpacking work.
XPULPV2 = {
    (2, 2): 300,
    (2, 4): 260,
    (2, 8): 210,
    (4, 2): 280,
    (4, 4): 180,
    (4, 8): 140,
    (8, 2): 230,
    (8, 4): 150,
    (8, 8): 100,
}
# XpulpNN-like: sub-byte SIMD makes low precisions fast, but mixed pairs pay for unpacking.
XPULPNN = {
    (2, 2): 50,
    (2, 4): 70,
    (2, 8): 120,
    (4, 2): 60,
    (4, 4): 80,
    (4, 8): 130,
    (8, 2): 110,
    (8, 4): 115,
    (8, 8): 100,
}


def _one_layer(b_in, b_wt, lat, fixed=False, bits=(2, 4, 8)):
    net = NetConfig("one", {K: FC}, (LayerConfig("fc", K, b_in, b_wt, fixed),))
    entries = {(K, a, w): v for (a, w), v in lat.items()}
    return net, LatencyTable(Target("t1", "xpulpv2", allowed_bits=bits), {K: FC}, entries)


def _fb(b_in, b_wt, lat, **kw):
    net, table = _one_layer(b_in, b_wt, lat)
    return free_bits(net, table, **kw).layers[0].precision


@pytest.mark.parametrize(
    "start, expected",
    [((2, 2), (8, 8)), ((4, 4), (8, 8)), ((2, 8), (8, 8)), ((8, 2), (8, 8)), ((4, 2), (8, 8)), ((8, 8), (8, 8))],
)
def test_xpulpv2_higher_pair_is_faster(start, expected):
    assert _fb(*start, XPULPV2) == Precision(*expected)


@pytest.mark.parametrize(
    "start, expected",
    [
        ((2, 2), (2, 2)),  # 50 is the fastest pair of all: nothing higher is as fast
        ((4, 2), (4, 2)),  # 60; every higher pair is slower
        ((2, 4), (2, 4)),  # 70; (4,4)=80 is slower
        ((8, 2), (8, 8)),  # 110 -> (8,8)=100
        ((2, 8), (8, 8)),  # 120 -> 100
        ((4, 8), (8, 8)),  # 130 -> 100
        ((8, 4), (8, 8)),  # 115 -> 100
        ((4, 4), (4, 4)),  # 80; (8,8)=100 is slower
    ],
)
def test_xpulpnn_like(start, expected):
    assert _fb(*start, XPULPNN) == Precision(*expected)


def test_best_pair_is_not_always_8_8():
    lat = dict(XPULPNN) | {(4, 4): 100, (4, 8): 90, (8, 4): 95, (8, 8): 120}
    assert _fb(4, 4, lat) == Precision(4, 8)
    assert _fb(2, 2, lat) == Precision(2, 2)
    assert _fb(2, 4, lat) == Precision(2, 4)  # 70: (4,8)=90 is slower
    lat[(2, 4)] = 95
    assert _fb(2, 4, lat) == Precision(4, 8)  # 95 -> 90, a pair two steps up


def test_tie_more_total_bits_wins():
    lat = {p: 500 for p in XPULPV2} | {(2, 2): 100, (2, 4): 80, (4, 4): 80, (4, 2): 90}
    assert _fb(2, 2, lat) == Precision(4, 4)  # (2,4) and (4,4) both 80: 8 bits beat 6


def test_tie_same_total_more_weight_bits_wins():
    lat = {p: 500 for p in XPULPV2} | {(2, 2): 100, (2, 8): 80, (8, 2): 80, (4, 4): 85}
    assert _fb(2, 2, lat) == Precision(2, 8)  # (2,8) and (8,2) both 80 with 10 bits: more weight bits
    lat[(4, 8)] = 80
    assert _fb(2, 2, lat) == Precision(4, 8)  # 12 bits beat 10


def test_tie_with_the_current_pair_moves_up():
    lat = dict(XPULPNN) | {(4, 4): 100, (8, 8): 100, (4, 8): 100, (8, 4): 100}
    assert _fb(4, 4, lat) == Precision(8, 8)


def test_best_pair_direct():
    lat = {Precision(a, w): v for (a, w), v in XPULPNN.items()}
    assert best_pair(Precision(8, 2), lat, lat) == Precision(8, 8)
    assert best_pair(Precision(4, 8), lat, lat) == Precision(8, 8)
    assert best_pair(Precision(4, 8), lat, lat, b_in_fixed=True) == Precision(4, 8)  # (8,8) would change b_in
    # the tie-break does not depend on the order in which candidates come
    tie = {Precision(2, 2): 100, Precision(8, 2): 80, Precision(2, 8): 80, Precision(4, 4): 80}
    for order in (
        [Precision(8, 2), Precision(2, 8), Precision(4, 4)],
        [Precision(4, 4), Precision(2, 8), Precision(8, 2)],
    ):
        assert best_pair(Precision(2, 2), tie, order) == Precision(2, 8)
        assert best_pair(Precision(2, 2), tie, order[::-1]) == Precision(2, 8)


def test_fixed_b_in_stays():
    lat = dict(XPULPV2)
    net, table = _one_layer(4, 2, lat, fixed=True)
    assert free_bits(net, table).layers[0].precision == Precision(4, 8)  # b_in stays 4; (4,8)=140 is the best


def test_allowed_restricts_pairs():
    assert _fb(2, 2, XPULPV2, allowed=(2, 4)) == Precision(4, 4)  # (8,8) is not allowed: (4,4)=180
    assert _fb(2, 2, XPULPV2, allowed=[4, 2]) == Precision(4, 4)
    assert _fb(2, 2, XPULPV2, allowed=(2, 8)) == Precision(8, 8)
    assert _fb(4, 2, XPULPV2, allowed=(2, 4)) == Precision(4, 4)


def test_missing_entry_error_names_key_and_pair():
    lat = {p: v for p, v in XPULPV2.items() if p != (8, 4)}
    net, table = _one_layer(4, 4, lat)
    with pytest.raises(MissingLatencyError) as ei:
        free_bits(net, table)
    assert (ei.value.key, ei.value.b_in, ei.value.b_wt) == (K, 8, 4)
    assert K in str(ei.value) and "(b_in=8, b_wt=4)" in str(ei.value)
    assert "t1" in str(ei.value)
    with pytest.raises(MissingLatencyError, match=r"\(b_in=8, b_wt=4\)"):
        free_bits(net, table, on_missing="error")


def test_missing_current_pair_error():
    net, table = _one_layer(2, 2, {p: v for p, v in XPULPV2.items() if p != (2, 2)})
    with pytest.raises(MissingLatencyError, match=r"\(b_in=2, b_wt=2\)"):
        free_bits(net, table)


def test_on_missing_keep_leaves_that_layer_unchanged():
    net, table = _tinynet_table(XPULPV2)
    dw_key = net.layer("dw1").layer_type
    entries = {k: v for k, v in table.entries.items() if k != (dw_key, 8, 4)}
    partial = dataclasses.replace(table, entries=entries)
    with pytest.raises(MissingLatencyError) as ei:
        free_bits(net, partial)
    assert ei.value.key == dw_key
    out = free_bits(net, partial, on_missing="keep")
    assert [str(lc.precision) for lc in out.layers] == ["8b/8b", "4b/4b", "8b/-", "8b/-", "8b/8b"]
    with pytest.raises(ValueError, match="on_missing"):
        free_bits(net, table, on_missing="skip")


def _tinynet_table(lat, add=7, pool=3):
    net = NetConfig.homogeneous(tinynet(), 4, 4)
    entries = {}
    for i, (key, t) in enumerate(net.layer_types.items()):
        for a in (2, 4, 8):
            if t.op == "add":
                entries[(key, a, None)] = add
            elif t.op == "avgpool":
                entries[(key, a, None)] = pool
            else:
                for w in (2, 4, 8):
                    entries[(key, a, w)] = (i + 1) * lat[(a, w)]
    return net, LatencyTable(Target("pulp-xpulpv2", "xpulpv2"), net.layer_types, entries)


def test_tinynet_network_example_and_provenance():
    net, table = _tinynet_table(XPULPV2)
    # conv0 (8,8): 1*100; dw1 (4,4): 2*180; add: 7; pool: 3; fc (4,4): 5*180
    assert network_latency(net, table) == 100 + 360 + 7 + 3 + 900 == 1370
    out = free_bits(net, table)
    assert [str(lc.precision) for lc in out.layers] == ["8b/8b", "8b/8b", "8b/-", "8b/-", "8b/8b"]
    assert network_latency(out, table) == 100 + 200 + 7 + 3 + 500 == 810
    assert out.provenance["method"] == "fb"
    assert out.provenance["parent"] == net.sha256()
    assert out.provenance["table_sha256"] == table.sha256()
    assert out.provenance["target"] == "pulp-xpulpv2"
    assert out.metrics["latency"] == {"pulp-xpulpv2": 810}
    assert out.metrics["bops"] == out.bops() == 4608 * 64 + 4608 * 64 + 80 * 64
    assert out.sha256() != net.sha256()
    # the result is a valid config: it survives a save/load round trip
    assert net.layer("fc").precision == Precision(4, 4)  # the input is not modified


def test_result_round_trips(tmp_path):
    net, table = _tinynet_table(XPULPNN)
    out = free_bits(net, table)
    out.save(tmp_path / "fb.json")
    back = NetConfig.load(tmp_path / "fb.json")
    assert back == out
    assert back.provenance["parent"] == net.sha256()


def test_network_latency_missing_and_keep():
    net, table = _tinynet_table(XPULPV2)
    add_key = net.layer("add1").layer_type
    partial = dataclasses.replace(table, entries={k: v for k, v in table.entries.items() if k[0] != add_key})
    with pytest.raises(MissingLatencyError, match="add_8x8x8"):
        network_latency(net, partial)
    assert network_latency(net, partial, on_missing="keep") == 1370 - 7


# -- selection ------------------------------------------------------------------------------------------------------
def _monotone_table():
    net = NetConfig.homogeneous(tinynet(), 8, 8)
    entries = {
        (k, a, w): (10 * a + 10 * w if t.configurable else 5)
        for k, t in net.layer_types.items()
        for a in (2, 4, 8)
        for w in ((2, 4, 8) if t.configurable else (None,))
    }
    return LatencyTable(Target("mono", "xpulpnn2"), net.layer_types, entries)


def _with_acc(cfg, acc):
    return dataclasses.replace(cfg, metrics={"val_accuracy": acc})


@pytest.fixture
def candidates():
    base = _with_acc(NetConfig.homogeneous(tinynet(), 8, 8), 0.90)  # 160 * 3 + 5 + 5 = 490
    c4 = _with_acc(NetConfig.homogeneous(tinynet(), 4, 4), 0.885)  # 160 + 80 + 80 + 10 = 330
    c2 = _with_acc(NetConfig.homogeneous(tinynet(), 2, 2), 0.80)  # 160 + 40 + 40 + 10 = 250
    mixed = _with_acc(base.with_precisions({"dw1": Precision(2, 2), "fc": Precision(4, 4)}), 0.89)  # 290
    return base, c4, c2, mixed


def test_latencies_of_candidates(candidates):
    table = _monotone_table()
    assert [network_latency(c, table) for c in candidates] == [490, 330, 250, 290]


def test_select_by_latency_target(candidates):
    base, c4, c2, mixed = candidates
    table = _monotone_table()
    pick = select([c4, c2, mixed], table, base, latency_target=300)
    assert pick.config is mixed and pick.latency == 290 and pick.accuracy == 0.89
    assert select([c4, c2, mixed], table, base, latency_target=330).config is mixed  # 0.89 > 0.885
    assert select([c4, c2], table, base, latency_target=330).config is c4
    assert select([c4, c2, mixed], table, base, latency_target=260).config is c2
    assert select([c4, c2, mixed], table, base, latency_target=10**6).config is base
    with pytest.raises(ValueError, match="fastest: 250"):
        select([c4, c2, mixed], table, base, latency_target=249)


def test_select_by_latency_target_tie_goes_to_faster(candidates):
    base, c4, c2, mixed = candidates
    same = _with_acc(c4, 0.89)
    assert select([same, mixed], _monotone_table(), base, latency_target=400).config is mixed


def test_select_by_accuracy_margin(candidates):
    base, c4, c2, mixed = candidates
    table = _monotone_table()
    configs = [c4, c2, mixed]
    assert select(configs, table, base, max_accuracy_drop_pp=0.5).config is base  # floor 0.895
    assert select(configs, table, base, max_accuracy_drop_pp=1.0).config is mixed  # floor 0.89, inclusive
    assert select(configs, table, base, max_accuracy_drop_pp=1.5).config is mixed  # 290 beats c4's 330
    assert select([c4], table, base, max_accuracy_drop_pp=1.5).config is c4
    assert select(configs, table, base, max_accuracy_drop_pp=10.0).config is c2
    assert select(configs, table, base, max_accuracy_drop_pp=0.0).config is base


def test_select_needs_exactly_one_criterion(candidates):
    base, c4, c2, mixed = candidates
    with pytest.raises(ValueError, match="exactly one"):
        select([c4], _monotone_table(), base)
    with pytest.raises(ValueError, match="exactly one"):
        select([c4], _monotone_table(), base, latency_target=300, max_accuracy_drop_pp=1.0)


def test_select_needs_accuracy(candidates):
    base, c4, c2, mixed = candidates
    with pytest.raises(ValueError, match=r"metrics\.val_accuracy"):
        select([NetConfig.homogeneous(tinynet(), 4, 4)], _monotone_table(), base, latency_target=400)


def test_pareto_front(candidates):
    base, c4, c2, mixed = candidates
    front = pareto_front([base, c4, c2, mixed], _monotone_table())
    assert [s.config for s in front] == [c2, mixed, base]  # c4 (330, 0.885) is beaten by mixed (290, 0.89)
    assert [(s.latency, s.accuracy) for s in front] == [(250, 0.80), (290, 0.89), (490, 0.90)]
    # equal latency: only the more accurate one stays
    twin = _with_acc(mixed, 0.70)
    assert [s.config for s in pareto_front([twin, mixed], _monotone_table())] == [mixed]


def test_homogeneous():
    net = NetConfig.homogeneous(tinynet(), 8, 8)
    four = homogeneous(net, 4)
    assert [str(lc.precision) for lc in four.layers] == ["8b/8b", "4b/4b", "8b/-", "8b/-", "4b/4b"]
    assert four.provenance["method"] == "homogeneous"
    assert four.provenance["parent"] == net.sha256()
    assert four.provenance["bits"] == [4, 4]
    mixed = homogeneous(net, (2, 8))
    assert [str(lc.precision) for lc in mixed.layers] == ["8b/8b", "2b/8b", "8b/-", "8b/-", "2b/8b"]


# -- diff -----------------------------------------------------------------------------------------------------------
def test_diff_rows_and_format():
    net, table = _tinynet_table(XPULPV2)
    out = free_bits(net, table)
    rows = diff(net, out, table)
    assert [(r.name, r.before, r.after, r.latency_before, r.latency_after, r.changed) for r in rows] == [
        ("conv0", "8b/8b", "8b/8b", 100, 100, False),
        ("dw1", "4b/4b", "8b/8b", 360, 200, True),
        ("add1", "8b/-", "8b/-", 7, 7, False),
        ("pool", "8b/-", "8b/-", 3, 3, False),
        ("fc", "4b/4b", "8b/8b", 900, 500, True),
    ]
    assert rows[1].to_json() == {
        "name": "dw1",
        "layer_type": "depthwise_conv2d_8x8x8_o8_k3x3_s1x1_p1.1.1.1_g8",
        "before": "4b/4b",
        "after": "8b/8b",
        "latency_before": 360,
        "latency_after": 200,
        "changed": True,
    }
    text = format_diff(rows)
    lines = text.splitlines()
    assert len(lines) == 1 + 5 + 1
    assert lines[2].startswith("dw1") and lines[2].endswith("*") and "-160" in lines[2]
    assert lines[-1].startswith("total") and "1,370" in lines[-1] and "810" in lines[-1] and "-560" in lines[-1]
    assert "(-40.9%)" in lines[-1]
    only = format_diff(rows, only_changed=True).splitlines()
    assert [line.split()[0] for line in only[1:]] == ["dw1", "fc", "total"]


def test_diff_without_table_and_of_different_networks():
    a = NetConfig.homogeneous(tinynet(), 8, 8)
    b = NetConfig.homogeneous(tinynet(), 2, 4)
    rows = diff(a, b)
    assert [r.name for r in rows if r.changed] == ["dw1", "fc"]
    assert all(r.latency_before is None for r in rows)
    assert "total" not in format_diff(rows)
    other = dataclasses.replace(b, layers=b.layers[:-1])
    with pytest.raises(ValueError, match="differ in layers"):
        diff(a, other)
