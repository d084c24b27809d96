"""Latency-budget optimizer speed on MobileNetV2-1.0@224 with a full built-in latency table.

    .venv/bin/python benchmarks/knapsack_speed.py [--isa xpulpnn1] [--bins 4096]

Prints the time of one budget solve and of the whole front (one DP pass), median of 5 runs, and the ratio of
bins to 1-cycle-exact solve cost where feasible. Sensitivities are synthetic (seeded): speed does not depend on
their values.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from fb_heuristic import knapsack, knapsack_front, network_latency
from fb_schema import NetConfig
from fb_schema.topologies import mobilenetv2


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--isa", default="xpulpnn1")
    parser.add_argument("--bins", type=int, default=4096)
    args = parser.parse_args()
    import fb_profile

    topo = mobilenetv2(1.0, 224)
    table = fb_profile.sweep(fb_profile.layer_types_of(topo), target=f"pulp-model:{args.isa}", progress=False)
    base = NetConfig.homogeneous(topo, 8, 8)
    rng = random.Random(0)
    sens = {
        l.name: {f"{a},{w}": rng.random() * (16 - a - w) for a in (2, 4, 8) for w in (2, 4, 8)}
        for l in base.layers
        if l.b_wt is not None
    }
    net = NetConfig(base.network, base.layer_types, base.layers, base.provenance, {"sensitivity": sens})
    budget = int(0.7 * network_latency(base, table))
    single, front_t = [], []
    for _ in range(5):
        t0 = time.perf_counter()
        result = knapsack(net, table, budget, bins=args.bins)
        single.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        front = knapsack_front(net, table, network_latency(base, table), bins=args.bins)
        front_t.append(time.perf_counter() - t0)
    print(f"MobileNetV2-1.0@224 on {args.isa}, {args.bins} bins, {sum(l.b_wt is not None for l in base.layers)} layers")
    print(f"one budget (70% of 8b/8b):  {statistics.median(single):.3f} s  latency {result.latency:,} ≤ {budget:,}")
    print(f"whole front ({len(front)} points): {statistics.median(front_t):.3f} s")


if __name__ == "__main__":
    main()
