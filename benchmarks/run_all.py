"""One table of the numbers users ask about, each measured in this run (the machine is shared and noisy: compare
ratios, not absolute times).

    .venv/bin/python benchmarks/run_all.py            # add --skip-bb to leave out the (slow) BB/float ratio

Rows: BB/float train-step ratio (benchmarks/bb_overhead.py), latency-table sweep cold and cached (MobileNetV1 +
MobileNetV2 layer types × 9 pairs × 3 ISAs), free bits on MobileNetV2-1.0 with a full table, the knapsack
optimizer on the same, integerize + DORY export + verify of a random MobileNetV2-0.35@96 network, and the wall
time of the last `make demo` (from runs/demo/results.json).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def median_time(fn, repeats: int = 5) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bb_ratio() -> str:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bb_overhead.py")], capture_output=True, text=True)
    ratios = re.findall(r"ratio BB/float (\S+): ([0-9.]+)", out.stdout)
    return ", ".join(f"{m} {r}×" for m, r in ratios) or f"failed: {out.stderr.strip()[-200:]}"


def sweep_times() -> tuple[float, float]:
    from fb_profile import layer_types_of, sweep
    from fb_schema.topologies import mobilenetv1, mobilenetv2

    types = {**layer_types_of(mobilenetv1(0.75, 224)), **layer_types_of(mobilenetv2(1.0, 224))}
    with tempfile.TemporaryDirectory() as cache:

        def run():
            for isa in ("xpulpv2", "xpulpnn1", "xpulpnn2"):
                sweep(types, f"pulp-model:{isa}", cache_dir=cache, progress=False)

        t0 = time.perf_counter()
        run()
        cold = time.perf_counter() - t0
        return cold, median_time(run, 3)


def heuristic_times() -> tuple[float, float]:
    import random

    from fb_heuristic import free_bits, homogeneous, knapsack, network_latency
    from fb_profile import layer_types_of, sweep
    from fb_schema import NetConfig
    from fb_schema.topologies import mobilenetv2

    topo = mobilenetv2(1.0, 224)
    table = sweep(layer_types_of(topo), "pulp-model:xpulpnn1", progress=False)
    net = homogeneous(NetConfig.homogeneous(topo, 8, 8), 4)
    fb = median_time(lambda: free_bits(net, table))
    rng = random.Random(0)
    sens = {l.name: {f"{a},{w}": rng.random() for a in (2, 4, 8) for w in (2, 4, 8)} for l in net.layers if l.b_wt}
    net = NetConfig(net.network, net.layer_types, net.layers, net.provenance, {"sensitivity": sens})
    budget = int(0.7 * network_latency(NetConfig.homogeneous(topo, 8, 8), table))
    return fb, median_time(lambda: knapsack(net, table, budget, bins=4096))


def export_verify_time() -> float:
    import fb_deploy
    from fb_heuristic import homogeneous
    from fb_schema import NetConfig
    from fb_schema.topologies import mobilenetv2

    topo = mobilenetv2(0.35, 96)
    config = homogeneous(NetConfig.homogeneous(topo, 8, 8), 4)
    with tempfile.TemporaryDirectory() as tmp:
        qn = fb_deploy.random_quantized_network(topo, config, seed=0, path=Path(tmp) / "net.json")
        t0 = time.perf_counter()
        net = fb_deploy.integerize(qn)
        fb_deploy.export_dory(net, Path(tmp) / "dory")
        assert fb_deploy.verify(Path(tmp) / "dory").ok
        return time.perf_counter() - t0


def demo_time() -> str:
    path = ROOT / "runs" / "demo" / "results.json"
    if not path.exists():
        return "no runs/demo/results.json (run `make demo`)"
    timings = json.loads(path.read_text())["timings"]
    return f"{sum(timings.values()):.0f} s (stages: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items()) + ")"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--skip-bb", action="store_true")
    args = parser.parse_args()
    rows = []
    if not args.skip_bb:
        rows.append(("BB/float train step", bb_ratio()))
    cold, cached = sweep_times()
    rows.append(("sweep MNv1+MNv2 × 3 ISAs, cold / cached", f"{cold:.2f} s / {cached:.3f} s ({cold / cached:.0f}×)"))
    fb, ks = heuristic_times()
    rows.append(("free bits, MobileNetV2-1.0, full table", f"{1000 * fb:.1f} ms"))
    rows.append(("knapsack, MobileNetV2-1.0, 4096 bins", f"{1000 * ks:.0f} ms ({ks / fb:.0f}× free bits)"))
    rows.append(("integerize + export + verify, MNv2-0.35@96", f"{export_verify_time():.2f} s"))
    rows.append(("make demo wall time", demo_time()))
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
