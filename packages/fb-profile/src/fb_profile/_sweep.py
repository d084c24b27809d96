"""The profiling sweep: every layer type x every allowed precision pair -> a LatencyTable (the paper's LD).

Free Bits (arXiv 2307.02894, Sec. III-B) needs the latency of every layer type at every (b_in, b_wt) pair. Points
are cached on disk under a key of the backend name and version, the target parameters, the layer type and the
pair, so a repeated or interrupted sweep computes only what is missing. A failing point is retried once and then
listed in the table's ``failed`` section with its error; it is never dropped silently.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import sys
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
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

    def add(self, points: list[tuple[Point, int]]) -> None:
        if not points:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            (self.path.parent / (self.path.stem + ".params.json")).write_text(json.dumps(self.params, indent=1))
        text = "".join(
            json.dumps({"layer_type": k, "b_in": a, "b_wt": w, "latency": v}) + "\n" for (k, a, w), v in points
        )
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
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


def _measure(backend, lt: LayerType, b_in: int, b_wt: int | None, b_out: int) -> tuple[int | None, str | None]:
    """Latency of one point, retried once; (None, error) when both attempts fail."""
    error = None
    for _ in range(2):
        try:
            return int(backend.latency(lt, b_in, b_wt, b_out)), None
        except Exception as exc:  # any backend failure becomes a `failed` entry
            error = f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None, error


def _measure_chunk(args) -> list[tuple[Point, int | None, str | None]]:
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
        **backend_options: tool paths of the gvsoc backend (dory_dir, dory_python, pulp_sdk, fb_deploy, ...).

    Returns:
        The LatencyTable; points that failed twice are listed under ``failed``.

    Example:
        >>> from fb_schema.topologies import tinynet
        >>> table = sweep(tinynet(), "pulp-model:xpulpnn1", cache_dir=False, progress=False)
        >>> table.target.name, len(table.entries), table.failed
        ('pulp-xpulpnn1', 33, [])
    """
    backend = make_backend(target, constants, **backend_options)
    bits = tuple(sorted(set(allowed_bits)))
    backend.check(bits, b_out)
    if layer_types is None:  # e.g. an imported table: profile what it holds
        layer_types = getattr(backend, "layer_types", None)
        if not layer_types:
            raise ValueError(f"{backend.spec}: give the layer types (network, config or ONNX) to sweep")
    types = layer_types_of(layer_types)
    points = sweep_points(types, bits)
    cache = None if cache_dir is False else PointCache(default_cache_dir() if cache_dir in (None, True) else cache_dir,
                                                        backend, b_out)  # fmt: skip
    done = cache.load() if cache else {}
    entries = {p: done[p] for p in points if p in done}
    todo = [(types[k], a, w) for (k, a, w) in points if (k, a, w) not in entries]
    if todo and hasattr(backend, "preflight"):  # missing tools: one error, not one failure per point
        backend.preflight()
    failed: dict[Point, str] = {}
    bar = progress_bar(total=len(todo), desc=f"sweep {backend.spec}", unit="point", enabled=progress and bool(todo))
    try:
        for results in _run(backend, todo, b_out, jobs):
            fresh = []
            for point, latency, error in results:
                if latency is None:
                    failed[point] = error or "unknown error"
                else:
                    entries[point] = latency
                    fresh.append((point, latency))
            if cache:
                cache.add(fresh)
            bar.update(len(results))
    finally:
        bar.close()
    target_obj = backend.target(b_out, bits)
    ordered = {p: entries[p] for p in points if p in entries}
    fails = [{"layer_type": k, "b_in": a, "b_wt": w, "error": failed[(k, a, w)]} for (k, a, w) in points
             if (k, a, w) in failed]  # fmt: skip
    return LatencyTable(target_obj, types, ordered, fails)


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
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        yield from pool.map(_measure_chunk, chunks)
