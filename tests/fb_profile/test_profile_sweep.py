"""Sweeps: entries for every pair, the disk cache, processes, retries and the failed list."""

from __future__ import annotations

from fb_profile import make_backend, sweep
from fb_schema import LatencyTable
from fb_schema.topologies import digitsnet, tinynet


class Counting:
    """Wraps a backend, counts calls and fails on demand (first attempt only, or always)."""

    def __init__(self, inner, flaky=(), broken=()):
        self.inner, self.flaky, self.broken, self.calls = inner, set(flaky), set(broken), []
        self.name, self.version, self.spec = inner.name, inner.version, inner.spec

    def cache_params(self):
        return self.inner.cache_params()

    def target(self, b_out, bits):
        return self.inner.target(b_out, bits)

    def check(self, bits, b_out):
        self.inner.check(bits, b_out)

    def latency(self, lt, a, w, o=8):
        self.calls.append((lt.key, a, w))
        if lt.op in self.broken or (lt.op in self.flaky and self.calls.count((lt.key, a, w)) == 1):
            raise RuntimeError(f"simulated failure of {lt.op}\nsecond line")
        return self.inner.latency(lt, a, w, o)


def test_sweep_covers_every_pair_and_round_trips(tmp_path):
    table = sweep(digitsnet(), "pulp-model:xpulpnn2", cache_dir=False, progress=False)
    n_conf = sum(lt.configurable for lt in table.layer_types.values())
    assert len(table.entries) == 9 * n_conf + 3 * (len(table.layer_types) - n_conf)
    assert table.target.name == "pulp-xpulpnn2" and table.target.backend == "pulp-model"
    assert all(v > 0 for v in table.entries.values())
    path = tmp_path / "t.json"
    table.save(path)
    assert LatencyTable.load(path).entries == table.entries


def test_cache_makes_a_repeated_or_interrupted_sweep_compute_only_what_is_missing(tmp_path):
    backend = Counting(make_backend("pulp-model:xpulpv2"))
    first = sweep(tinynet(), backend, cache_dir=tmp_path, progress=False)
    assert len(backend.calls) == 33
    again = sweep(tinynet(), backend, cache_dir=tmp_path, progress=False)
    assert len(backend.calls) == 33 and again.entries == first.entries
    # Interrupted: drop the last 10 cached points (and tear the last line), only those are recomputed.
    (cache,) = tmp_path.glob("*.jsonl")
    lines = cache.read_text().splitlines()
    cache.write_text("\n".join(lines[:-10]) + "\n" + lines[-10][:15])
    sweep(tinynet(), backend, cache_dir=tmp_path, progress=False)
    assert len(backend.calls) == 43
    # Other target parameters (another ISA, another b_out) use other cache entries.
    sweep(tinynet(), backend, cache_dir=tmp_path, progress=False, b_out=4)
    assert len(backend.calls) == 76


def test_failing_points_are_retried_once_then_listed(tmp_path):
    backend = Counting(make_backend("pulp-model:xpulpv2"), flaky={"conv2d"}, broken={"add"})
    table = sweep(tinynet(), backend, cache_dir=tmp_path, progress=False)
    conv = "conv2d_8x8x1_o8_k3x3_s1x1_p1.1.1.1_g1"
    assert sum((conv, 8, 8) == c for c in backend.calls) == 2  # failed once, retried, succeeded
    assert (conv, 8, 8) in table.entries
    assert [(f["b_in"], f["b_wt"]) for f in table.failed] == [(2, None), (4, None), (8, None)]
    assert table.failed[0]["error"] == "RuntimeError: simulated failure of add"
    assert len(table.entries) == 30
    # Failures are not cached: the next sweep tries them again.
    n = len(backend.calls)
    sweep(tinynet(), backend, cache_dir=tmp_path, progress=False)
    assert len(backend.calls) == n + 6


def test_two_processes_give_the_same_table():
    one = sweep(digitsnet(), "pulp-model:xpulpv2", cache_dir=False, progress=False)
    two = sweep(digitsnet(), "pulp-model:xpulpv2", jobs=2, cache_dir=False, progress=False)
    assert two.entries == one.entries and list(two.entries) == list(one.entries)
