"""Cold and cached time of a full fb-profile sweep: MobileNetV1-0.75 + MobileNetV2-1.0 (224) layer types x 9 pairs
x 3 ISAs, with 1 and 2 worker processes. Goal: cold < 10 s, cached < 1 s.

Run: .venv/bin/python benchmarks/sweep_speed.py
"""

from __future__ import annotations

import subprocess
import sys
import tempfile

CHILD = r"""
import sys, time
from fb_schema.topologies import mobilenetv1, mobilenetv2
from fb_profile import layer_types_of, sweep
types = {**layer_types_of(mobilenetv1(0.75, 224)), **layer_types_of(mobilenetv2(1.0, 224))}
jobs, cache = int(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
n = 0
for isa in ("xpulpv2", "xpulpnn1", "xpulpnn2"):
    table = sweep(types, f"pulp-model:{isa}", jobs=jobs, cache_dir=cache, progress=False)
    assert not table.failed, table.failed
    n += len(table.entries)
print(f"{time.perf_counter() - start:.3f} {n} {len(types)}")
"""


def run(jobs: int, cache: str) -> tuple[float, int, int]:
    out = subprocess.run([sys.executable, "-c", CHILD, str(jobs), cache], capture_output=True, text=True, check=True)
    seconds, points, types = out.stdout.split()
    return float(seconds), int(points), int(types)


def main() -> None:
    for jobs in (1, 2):
        with tempfile.TemporaryDirectory() as cache:  # fresh processes: no in-memory tiling cache either
            cold, points, types = run(jobs, cache)
            cached, _, _ = run(jobs, cache)
        print(f"jobs={jobs}: {types} layer types, {points} points: cold {cold:.2f} s, cached {cached:.3f} s")


if __name__ == "__main__":
    main()
