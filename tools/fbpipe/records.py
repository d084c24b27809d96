"""What each unit of stage work read and wrote, so that a later run reuses it only when nothing changed.

A unit (one float training, one table, one search run, one fine-tuning, ...) has a record under
``records/<key>.json``: its inputs (the config fields it used and its upstream units' digests) and the sha256
of every output file or directory, relative to the run directory. A unit is reused only when its record exists,
its inputs are the same and every output still has its recorded hash; otherwise it runs again and the reason is
printed. A unit's digest covers its inputs and its outputs, so a change anywhere upstream reaches everything
that depends on it, while a unit that re-ran and wrote the same bytes leaves its dependents alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from fb_schema import SchemaError, read_json, sha256_of, write_json

T = TypeVar("T")
SKIPPED = {"metrics.jsonl"}  # appended logs, not results
# Errors that mean "the recorded outputs cannot be used": the unit runs again instead of a traceback.
UNREADABLE = (SchemaError, ValueError, KeyError, TypeError, OSError, IndexError)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def path_sha256(path: Path) -> str | None:
    """sha256 of a file, or of a directory's (relative name, sha256) list; None when absent.

    Inside directories, logs (``metrics.jsonl``), step checkpoints (``steps``, ``*-steps``) and hidden
    temporary files are not part of the result and are skipped.
    """
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        return None
    listing = []
    for root, dirs, files in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not (d == "steps" or d.endswith("-steps") or d.startswith(".")))
        for name in sorted(files):
            if name in SKIPPED or name.startswith("."):
                continue
            full = Path(root) / name
            listing.append([full.relative_to(path).as_posix(), file_sha256(full)])
    return sha256_of(listing)


class Records:
    """The records of one run directory (``<out>/records``)."""

    def __init__(self, out: Path, echo: Callable[[str], None]):
        self.out, self.echo = out, echo
        self.dir = out / "records"
        self.ran: list[str] = []
        self.reused: list[str] = []

    def _path(self, key: str) -> Path:
        return self.dir / (key.replace("/", "--") + ".json")

    def rel(self, path: str | os.PathLike) -> str:
        """``path`` relative to the run directory (as stored in records and results)."""
        p = Path(path)
        try:
            return Path(os.path.relpath(p.absolute(), self.out.absolute())).as_posix()
        except ValueError:  # another drive (Windows)
            return str(p.absolute())

    def resolve(self, stored: str) -> Path:
        """A stored path, relative to the run directory (or absolute), as a path to open from any cwd."""
        return self.out / stored

    def digest(self, key: str) -> str | None:
        """The digest of a finished unit (its inputs and outputs), for its dependents' inputs."""
        try:
            return read_json(self._path(key))["digest"]
        except UNREADABLE:
            return None

    def upstream(self, *keys: str) -> dict[str, str | None]:
        """``{key: digest}`` of the units a unit reads, for its ``inputs["upstream"]``."""
        return {key: self.digest(key) for key in keys}

    def why_rerun(self, key: str, inputs: dict[str, Any]) -> str | None:
        """None when the unit can be reused, else the reason it must run again."""
        stale = self._staleness(key, inputs)
        return None if stale is None else stale[1]

    def _staleness(self, key: str, inputs: dict[str, Any]) -> tuple[str, str] | None:
        """None when the unit can be reused, else ``(kind, reason)``; ``kind`` is ``new`` (never ran),
        ``inputs`` (its inputs changed), ``unreadable`` or ``outputs`` (an output is missing or changed)."""
        try:
            record = read_json(self._path(key))
            old_inputs, outputs = record["inputs"], record["outputs"]
        except SchemaError as exc:
            if not self._path(key).exists():
                return "new", "no record of a finished run"
            return "unreadable", f"unreadable record ({exc})"
        except UNREADABLE as exc:
            return "unreadable", f"unreadable record ({exc})"
        canonical = _canonical(inputs)
        changed = [k for k in sorted(set(canonical) | set(old_inputs)) if canonical.get(k) != old_inputs.get(k)]
        if changed:
            return "inputs", "inputs changed: " + ", ".join(
                _change(k, old_inputs.get(k), canonical.get(k)) for k in changed
            )
        for rel, sha in outputs.items():
            now = path_sha256(self.resolve(rel))
            if now is None:
                return "outputs", f"{rel} is missing"
            if now != sha:
                return "outputs", f"{rel} changed since it was written (sha256 {now[:12]}, recorded {sha[:12]})"
        return None

    def write(self, key: str, inputs: dict[str, Any], outputs: list[Path]) -> None:
        hashes = {}
        for p in outputs:
            sha = path_sha256(Path(p))
            if sha is None:
                raise FileNotFoundError(f"{p}: the stage did not write this output")
            hashes[self.rel(p)] = sha
        canonical = _canonical(inputs)
        digest = sha256_of({"inputs": canonical, "outputs": hashes})
        write_json(self._path(key), {"key": key, "inputs": canonical, "outputs": hashes, "digest": digest})

    def forget(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def cached(
        self,
        key: str,
        inputs: dict[str, Any],
        compute: Callable[[], tuple[T, list[Path]]],
        load: Callable[[], T],
        scratch: tuple[Path, ...] = (),
    ) -> T:
        """``load()`` the unit's outputs when its record matches, else ``compute()`` (result, outputs) and record.

        A record that matches but whose outputs cannot be read (``load`` raises) also means running again.
        ``scratch`` (step checkpoints) is removed before a re-run whose inputs changed: resuming from it would
        mix the old run into the new one.
        """
        stale = self._staleness(key, inputs)
        if stale is None:
            try:
                result = load()
                self.reused.append(key)
                return result
            except UNREADABLE as exc:
                detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                stale = ("outputs", f"its outputs cannot be read ({detail})")
        kind, reason = stale
        if self._path(key).exists() or kind != "new":
            self.echo(f"      re-running {key}: {reason}")
        self.forget(key)  # an interrupted re-run must not leave a record that matches the old outputs
        if kind == "inputs":
            for path in scratch:
                shutil.rmtree(path, ignore_errors=True)
        result, outputs = compute()
        self.write(key, inputs, outputs)
        self.ran.append(key)
        return result


def _canonical(inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs as they read back from JSON (tuples become lists), so that comparisons are exact."""
    return json.loads(json.dumps(inputs, sort_keys=True))


def _change(key: str, old: Any, new: Any) -> str:
    if key == "upstream" and isinstance(old, dict) and isinstance(new, dict):
        moved = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
        return "upstream " + ", ".join(moved) + " changed"
    return f"{key} {json_short(old)} → {json_short(new)}"


def json_short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."
