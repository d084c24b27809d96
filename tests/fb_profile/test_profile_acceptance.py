"""The paper's Fig. 1 / Table I facts on MobileNetV1-0.75@224 with the shipped constants (printed, then asserted)."""

from __future__ import annotations

import statistics

from fb_profile import builtin_constants, kernel_cycles, throughput_stats
from fb_schema import LayerType, NetConfig, Precision, all_pairs
from fb_schema.topologies import mobilenetv1

PAIRS = all_pairs((2, 4, 8))
P88 = Precision(8, 8)


def _conf(table):
    return [k for k, lt in table.layer_types.items() if lt.configurable]


def _median_ratio(table, keys, p):
    return statistics.median(table.latency(k, p) / table.latency(k, P88) for k in keys)


def test_xpulpv2_median_layer_fastest_at_8_8_but_some_layer_gains_from_sub_byte(mnv1_tables, capsys):
    t = mnv1_tables["xpulpv2"]
    keys = _conf(t)
    ratios = {p: _median_ratio(t, keys, p) for p in PAIRS}
    faster = [(k, p) for k in keys for p in PAIRS if p != P88 and t.latency(k, p) < t.latency(k, P88)]
    medians = {p: s["median"] for p, s in throughput_stats(t).items()}  # the ticks of Fig. 1
    with capsys.disabled():
        print("\n[xpulpv2] median latency / latency(8,8):", {str(p): round(r, 3) for p, r in ratios.items()})
        print("[xpulpv2] median MAC/cycle:", {str(p): round(m, 2) for p, m in medians.items()})
        print(f"[xpulpv2] {len({k for k, _ in faster})} of {len(keys)} layer types gain from a sub-byte pair")
    assert all(r > 1.0 for p, r in ratios.items() if p != P88)
    assert max(medians, key=medians.get) == P88
    assert faster, "no layer is faster at a sub-byte pair than at (8,8)"
    # The gains come from what sub-byte data saves: L3 weight traffic (FC) and the depthwise input DMA.
    gainers = {t.layer_types[k].op for k, _ in faster}
    assert {"linear", "depthwise_conv2d"} <= gainers


def test_xpulpnn1_median_pointwise_layer_2_lt_4_lt_8(mnv1_tables, capsys):
    t = mnv1_tables["xpulpnn1"]
    pw = [k for k in _conf(t) if t.layer_types[k].op == "conv2d" and t.layer_types[k].kernel == (1, 1)]
    r22, r44 = (_median_ratio(t, pw, Precision(a, a)) for a in (2, 4))
    median_layer = sorted(pw, key=lambda k: t.layer_types[k].macs * 1e9 + t.latency(k, P88))[len(pw) // 2]
    lat = [t.latency(median_layer, Precision(a, a)) for a in (2, 4, 8)]
    with capsys.disabled():
        print(f"\n[xpulpnn1] pointwise median ratio (2,2) {r22:.3f}  (4,4) {r44:.3f}  (8,8) 1")
        print(f"[xpulpnn1] median pointwise layer {median_layer}: (2,2) {lat[0]} < (4,4) {lat[1]} < (8,8) {lat[2]}")
    assert r22 < r44 < 1.0
    assert lat[0] < lat[1] < lat[2]


def test_xpulpnn1_software_weight_unpacking_is_slower_than_equal_widths(mnv1_tables):
    t = mnv1_tables["xpulpnn1"]
    convs = [k for k in _conf(t) if t.layer_types[k].op == "conv2d"]
    for k in convs:
        for p in PAIRS:
            if p.b_in > p.b_wt:
                assert t.latency(k, p) > t.latency(k, Precision(p.b_in, p.b_in)), (k, p)


def test_xpulpnn2_is_never_slower_than_xpulpnn1(mnv1_tables):
    nn1, nn2 = mnv1_tables["xpulpnn1"], mnv1_tables["xpulpnn2"]
    assert nn1.entries.keys() == nn2.entries.keys()
    assert all(nn2.entries[p] <= nn1.entries[p] for p in nn1.entries)
    assert sum(nn2.entries[p] < nn1.entries[p] for p in nn1.entries) > 20  # strictly faster where HW expands


def test_kernel_peaks_on_the_sanity_layer(capsys):
    lt = LayerType.conv2d(16, 16, 32, 64, kernel=3)  # single L1 tile, kernel only
    mpc = {
        (isa, b): lt.macs / kernel_cycles(lt, b, b, builtin_constants(isa))
        for isa in ("xpulpv2", "xpulpnn1")
        for b in (8, 4, 2)
    }
    r4 = mpc[("xpulpnn1", 4)] / mpc[("xpulpv2", 4)]
    r2 = mpc[("xpulpnn1", 2)] / mpc[("xpulpv2", 2)]
    with capsys.disabled():
        print(f"\n[kernel] xpulpv2 8-bit {mpc[('xpulpv2', 8)]:.2f} MAC/cycle (paper 15.5); "
              f"xpulpnn1/xpulpv2 4-bit {r4:.2f}x (paper 6x), 2-bit {r2:.2f}x (paper 8x)")  # fmt: skip
    assert abs(mpc[("xpulpv2", 8)] / 15.5 - 1) <= 0.15
    assert abs(r4 / 6 - 1) <= 0.15
    assert abs(r2 / 8 - 1) <= 0.15


def test_network_sums_have_the_signs_of_table_i(mnv1_tables, capsys):
    net = mobilenetv1(0.75, 224)
    ratio = {}
    for isa, t in mnv1_tables.items():
        total = {}
        for b in (8, 4):
            cfg = NetConfig.homogeneous(net, b, b)
            total[b] = sum(t.latency(layer.layer_type, layer.precision) for layer in cfg.layers)
        ratio[isa] = total[4] / total[8]
    with capsys.disabled():
        print("\n[MobileNetV1-0.75@224] latency 4b/4b vs 8b/8b:",
              ", ".join(f"{isa} {100 * (r - 1):+.1f} %" for isa, r in ratio.items()),
              "(paper: +49.9 %, -32.3 %, -38.3 %)")  # fmt: skip
    assert ratio["xpulpv2"] > 1.0
    assert ratio["xpulpnn1"] < 1.0
    assert ratio["xpulpnn2"] < 1.0
