"""The profiling sweep: every layer type x every allowed precision pair -> a LatencyTable (the paper's LD).

Free Bits (arXiv 2307.02894, Sec. III-B) needs the latency of every layer type at every (b_in, b_wt) pair. Points
are cached on disk under a key of the backend name and version, the target parameters, the layer type and the
pair, so a repeated or interrupted sweep computes only what is missing. A failing point is retried once and then
listed in the table's ``failed`` section with its error; it is never dropped silently. Deterministic failures (a
wrong checksum or a hang on the simulator) are not retried and are cached, so a resumed multi-hour sweep does not
re-run them unless ``retry_failed`` is set; any other failure is tried again by the next sweep. The table's
``provenance`` records the backend's tools, the date, the command and how many points were measured in how long.
"""

from __future__ import annotations

import datetime
import json
import math
import multiprocessing
import os
import sys
import time
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fb_profile._backends import make_backend
from fb_profile._layers import layer_types_of
from fb_profile._progress import progress as progress_bar
from fb_schema import LatencyTable, LayerType, all_pairs, sha256_of, write_atomic

Point = tuple[str, int, int | None]


def default_cache_dir() -> Path:
    """``$FB_PROFILE_CACHE``, else ``~/.cache/fb-profile``."""
    env = os.environ.get("FB_PROFILE_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "fb-profile"


class PointCache:
    """Append-only JSON-lines store of measured points, one file per backend configuration.

    Lines are appended whole (``O_APPEND``), so an interrupted sweep leaves every finished point readable; a torn
    last line is ignored on reading.
    """

    def __init__(self, root: str | os.PathLike, backend, b_out: int):
        params = {"backend": backend.name, "version": backend.version, "b_out": b_out, **backend.cache_params()}
        self.params = params
        self.path = Path(root) / f"{backend.name}-{sha256_of(params)[:16]}.jsonl"

    @property
    def failed_path(self) -> Path:
        return self.path.with_suffix(".failed.jsonl")

    @staticmethod
    def _read(path: Path) -> list[dict]:
        try:
            lines = path.read_text().splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                d = json.loads(line)
                d["point"] = (d["layer_type"], d["b_in"], d["b_wt"])
                out.append(d)
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def load(self) -> dict[Point, int]:
        """The cached points; unreadable lines (bad bytes, non-finite or negative latencies) are skipped, so
        their points are measured again, with one warning naming the cache file."""
        out: dict[Point, int] = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return out
        lines = raw.split(b"\n")
        bad = []
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                point, latency = _parse_line(line)
            except (ValueError, KeyError, TypeError, OverflowError) as exc:
                if number < len(lines) or raw.endswith(b"\n"):  # a torn last line is an interruption, not damage
                    bad.append(f"line {number}: {exc}")
                continue
            out[point] = latency
        if bad:
            print(f"fb-profile: warning: {self.path}: skipped {len(bad)} unreadable line(s), measuring those "
                  f"points again ({bad[0]})", file=sys.stderr)  # fmt: skip
            # Keep only the good lines, so the warning is given once; a point lost to a concurrent writer
            # between the read and the rename is only measured again.
            good = "".join(json.dumps({"layer_type": k, "b_in": a, "b_wt": w, "latency": v}) + "\n"
                           for (k, a, w), v in out.items())  # fmt: skip
            write_atomic(self.path, good)
        return out

    def seconds(self) -> dict[Point, float]:
        """Seconds each cached point took to measure (where recorded)."""
        return {d["point"]: float(d["seconds"]) for d in self._read(self.path) if "seconds" in d}

    def load_failed(self) -> dict[Point, tuple[str, float]]:
        """Cached failures: point -> (error, seconds)."""
        return {d["point"]: (str(d.get("error")), float(d.get("seconds", 0.0))) for d in self._read(self.failed_path)}

    def add(self, points: list[tuple[Point, int]] | list[tuple[Point, int, float]]) -> None:
        """Append measured points, optionally with the seconds each took."""
        rows = []
        for item in points:
            (k, a, w), v = item[0], item[1]
            row = {"layer_type": k, "b_in": a, "b_wt": w, "latency": v}
            if len(item) > 2:
                row["seconds"] = round(item[2], 2)
            rows.append(row)
        self._append(self.path, rows)

    def add_failed(self, failures: list[tuple[Point, str, float]]) -> None:
        self._append(self.failed_path, [{"layer_type": k, "b_in": a, "b_wt": w, "error": e, "seconds": round(t, 2)}
                                        for (k, a, w), e, t in failures])  # fmt: skip

    def _append(self, path: Path, rows: list[dict]) -> None:
        if not rows:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        params = self.path.parent / (self.path.stem + ".params.json")
        if not params.exists():
            params.write_text(json.dumps(self.params, indent=1))
        text = "".join(json.dumps(r) + "\n" for r in rows)
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                text = "\n" + text  # after a torn last line: start a fresh line rather than extend the torn one
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def _parse_line(line: bytes) -> tuple[Point, int]:
    d = json.loads(line.decode("utf-8"))
    latency = d["latency"]
    if isinstance(latency, float) and not math.isfinite(latency):
        raise ValueError(f"latency: expected a finite integer, got {latency}")
    if isinstance(latency, bool) or not isinstance(latency, (int, float)) or latency != int(latency):
        raise ValueError(f"latency: expected an integer, got {latency!r}")
    if latency < 0:
        raise ValueError(f"latency: expected a non-negative integer, got {latency}")
    b_wt = d["b_wt"]
    kinds_ok = isinstance(d["layer_type"], str) and isinstance(d["b_in"], int) and isinstance(b_wt, (int, type(None)))
    if not kinds_ok:
        raise ValueError("expected layer_type (string), b_in (integer) and b_wt (integer or null)")
    return (d["layer_type"], d["b_in"], b_wt), int(latency)


@dataclass(frozen=True)
class SweepPlan:
    """Which of a sweep's points to measure in this run (the others come from the cache or stay missing).

    ``pairs`` restricts the configurable layers to these (b_in, b_wt) pairs (add / pool points are always in),
    ``types`` to these layer-type keys; ``cached_only`` measures nothing and builds the table from the cache;
    ``retry_failed`` re-measures cached failures.
    """

    pairs: tuple[tuple[int, int], ...] | None = None
    types: tuple[str, ...] | None = None
    cached_only: bool = False
    retry_failed: bool = False

    def selects(self, key: str, b_in: int, b_wt: int | None) -> bool:
        if self.types is not None and key not in self.types:
            return False
        return self.pairs is None or b_wt is None or (b_in, b_wt) in self.pairs

    def check(self, types: dict[str, LayerType], bits: tuple[int, ...]) -> None:
        """One-line ValueError for a key that is not a layer type of the network or a pair outside the bits."""
        for key in self.types or ():
            if key not in types:
                raise ValueError(f"--types: {key!r} is not a layer type of this network")
        for a, w in self.pairs or ():
            if a not in bits or w not in bits:
                raise ValueError(f"--pairs: {a}/{w} is outside the allowed bits {', '.join(map(str, bits))}")


def sweep_points(layer_types: dict[str, LayerType], allowed_bits: Iterable[int]) -> list[Point]:
    """(key, b_in, b_wt) for every pair of a configurable layer and every b_in of an add/pool (b_wt None)."""
    bits = tuple(sorted(allowed_bits))
    points: list[Point] = []
    for key, lt in layer_types.items():
        if lt.configurable:
            points += [(key, p.b_in, p.b_wt) for p in all_pairs(bits)]
        else:
            points += [(key, b, None) for b in bits]
    return points


def _measure(backend, lt: LayerType, b_in: int, b_wt: int | None, b_out: int) -> tuple[int | None, str | None, float,
                                                                                       bool]:  # fmt: skip
    """(latency, None, seconds, False) of one point, retried once; (None, error, seconds, deterministic) when it
    fails. A deterministic failure (a wrong checksum, a simulator hang: ``exc.retry`` False) is not retried and is
    cached; any other is retried once now and again by the next sweep."""
    error, start = None, time.perf_counter()
    for _ in range(2):
        try:
            return int(backend.latency(lt, b_in, b_wt, b_out)), None, time.perf_counter() - start, False
        except Exception as exc:  # any backend failure becomes a `failed` entry
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
            if not getattr(exc, "retry", True):
                return None, error, time.perf_counter() - start, True
    return None, error, time.perf_counter() - start, False


def _measure_chunk(args) -> list[tuple[Point, int | None, str | None, float, bool]]:
    backend, items, b_out = args
    return [((lt.key, a, w), *_measure(backend, lt, a, w, b_out)) for lt, a, w in items]


def sweep(
    layer_types: Any,
    target: Any = "pulp-model:xpulpv2",
    allowed_bits: Iterable[int] = (2, 4, 8),
    jobs: int = 1,
    cache_dir: str | os.PathLike | None | bool = None,
    progress: bool = True,
    b_out: int = 8,
    constants: str | os.PathLike | None = None,
    plan: SweepPlan | None = None,
    **backend_options: Any,
) -> LatencyTable:
    """Profile every layer type at every allowed pair on ``target`` and return the latency table.

    Args:
        layer_types: ``{key: LayerType}``, or anything ``layer_types_of`` reads (topology, config, ONNX path);
            None = the layer types the backend holds (an imported table).
        target: a spec such as ``"pulp-model:xpulpnn1"`` or a backend object.
        allowed_bits: bit widths for b_in and b_wt (the table's ``allowed_bits``).
        jobs: worker processes (1 = in this process).
        cache_dir: point cache directory; None = ``default_cache_dir()``, False = no cache.
        progress: show a progress bar.
        b_out: output bits of every layer (the table's ``b_out``).
        constants: a calibrated constants file for the pulp-model backend.
        plan: which points to measure now (subset of pairs / types, cached only, retry failures); None = all.
        **backend_options: tool paths of the gvsoc backend (dory_dir, dory_python, pulp_sdk, fb_deploy, ...).

    Returns:
        The LatencyTable; points that failed twice are listed under ``failed``, and its ``provenance`` says how
        many points were measured, taken from the cache, failed or not measured, and how long they took.

    Example:
        >>> from fb_schema.topologies import tinynet
        >>> table = sweep(tinynet(), "pulp-model:xpulpnn1", cache_dir=False, progress=False)
        >>> table.target.name, len(table.entries), table.failed
        ('pulp-xpulpnn1', 33, [])
    """
    plan = plan or SweepPlan()
    backend = make_backend(target, constants, **backend_options)
    bits = tuple(sorted(set(allowed_bits)))
    backend.check(bits, b_out)
    if layer_types is None:  # e.g. an imported table: profile what it holds
        layer_types = getattr(backend, "layer_types", None)
        if not layer_types:
            raise ValueError(f"{backend.spec}: give the layer types (network, config or ONNX) to sweep")
    types = layer_types_of(layer_types)
    points = sweep_points(types, bits)
    plan.check(types, bits)
    cache = None if cache_dir is False else PointCache(default_cache_dir() if cache_dir in (None, True) else cache_dir,
                                                        backend, b_out)  # fmt: skip
    entries, failed = _from_cache(cache, points, plan.retry_failed)
    wanted = [p for p in points if p not in entries and p not in failed]
    todo = [] if plan.cached_only else [(types[k], a, w) for (k, a, w) in wanted if plan.selects(k, a, w)]
    if todo and hasattr(backend, "preflight"):  # missing tools: one error, not one failure per point
        backend.preflight()
    start = time.perf_counter()
    bar = progress_bar(total=len(todo), desc=f"sweep {backend.spec}", unit="point", enabled=progress and bool(todo))
    try:
        spent = _measure_all(backend, todo, b_out, jobs, cache, bar, entries, failed)
    finally:
        bar.close()
    target_obj = backend.target(b_out, bits)
    ordered = {p: entries[p] for p in points if p in entries}
    fails = [{"layer_type": k, "b_in": a, "b_wt": w, "error": failed[(k, a, w)]} for (k, a, w) in points
             if (k, a, w) in failed]  # fmt: skip
    stats = {"now": len(todo), "wall_s": round(time.perf_counter() - start, 1), "point_s": round(spent, 1),
             "jobs": jobs, "cache": str(cache.path) if cache else None, "cached_only": plan.cached_only}  # fmt: skip
    return LatencyTable(target_obj, types, ordered, fails, _provenance(backend, points, ordered, fails, cache, stats))


def _from_cache(cache, points: list[Point], retry_failed: bool) -> tuple[dict[Point, int], dict[Point, str]]:
    """The latencies the cache holds for ``points``, and the deterministic failures it holds (unless retried)."""
    done = cache.load() if cache else {}
    entries = {p: done[p] for p in points if p in done}
    failed: dict[Point, str] = {}
    if cache and not retry_failed:
        failed = {p: e for p, (e, _) in cache.load_failed().items() if p in set(points) and p not in entries}
    return entries, failed


def _measure_all(backend, todo: list, b_out: int, jobs: int, cache, bar, entries: dict[Point, int],
                 failed: dict[Point, str]) -> float:  # fmt: skip
    """Measure ``todo`` into ``entries`` / ``failed``, caching each chunk as it comes; the seconds spent."""
    spent = 0.0
    for results in _run(backend, todo, b_out, jobs):
        fresh, bad = [], []
        for point, latency, error, seconds, deterministic in results:
            spent += seconds
            if latency is None:
                failed[point] = error or "unknown error"
                if deterministic:
                    bad.append((point, failed[point], seconds))
            else:
                failed.pop(point, None)
                entries[point] = latency
                fresh.append((point, latency, seconds))
        if cache:
            cache.add(fresh)
            cache.add_failed(bad)
        bar.update(len(results))
    return spent


def _provenance(backend, points, entries, fails, cache, stats) -> dict[str, Any]:
    """What the table records about how it was made (tools, date, command, counts, time)."""
    seconds = cache.seconds() if cache else {}
    failed_s = {p: t for p, (_, t) in cache.load_failed().items()} if cache else {}
    fail_pts = [(f["layer_type"], f["b_in"], f["b_wt"]) for f in fails]
    counts = {"total": len(points), "measured": len(entries), "failed": len(fails),
              "not_measured": len(points) - len(entries) - len(fails),
              "measure_s": round(sum(seconds.get(p, 0.0) for p in entries), 1),
              "failed_s": round(sum(failed_s.get(p, 0.0) for p in fail_pts), 1)}  # fmt: skip
    prov: dict[str, Any] = {
        "backend": backend.spec,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["fb-profile", *sys.argv[1:]]) if Path(sys.argv[0]).name == "fb-profile" else None,
        "points": counts,
        "this_run": stats,
    }
    if hasattr(backend, "provenance"):
        prov.update(backend.provenance())
    return prov


def _run(backend, todo: list, b_out: int, jobs: int):
    """Yield result chunks: in this process for jobs == 1, else over a process pool."""
    if not todo:
        return
    hint = getattr(backend, "chunk", None)  # slow backends (gvsoc) cache and report every single point
    if jobs <= 1 or len(todo) < 2 * jobs:
        step = hint or max(1, len(todo) // 50)
        for i in range(0, len(todo), step):
            yield _measure_chunk((backend, todo[i : i + step], b_out))
        return
    # Chunks of consecutive points keep one layer type's pairs together (its tilings are cached per process).
    size = hint or max(1, min(64, len(todo) // (4 * jobs)))
    chunks = [(backend, todo[i : i + size], b_out) for i in range(0, len(todo), size)]
    # "spawn": the caller may have JAX (multithreaded) loaded, and forking a multithreaded process can deadlock.
    # Results are yielded as they complete, so one slow point does not hold back the caching of the others.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        for future in as_completed([pool.submit(_measure_chunk, chunk) for chunk in chunks]):
            yield future.result()
