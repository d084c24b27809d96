"""Progress of long loops: a tqdm bar on a terminal, else one plain line every N steps (readable in logs).

``FB_NO_PROGRESS=1`` (what every ``--no-progress`` flag sets) turns both off.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import Any

from tqdm.auto import tqdm

LINES = 20  # a log gets about this many lines per loop, and one at least every SECONDS
SECONDS = 60.0


def progress_enabled() -> bool:
    return os.environ.get("FB_NO_PROGRESS", "") in ("", "0")


def progress(iterable: Iterable | None = None, total: int | None = None, desc: str = "", enabled: bool = True,
             unit: str = "step"):  # fmt: skip
    """A tqdm bar on a terminal; a :class:`LineProgress` when stderr is not one; a silent one when disabled."""
    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    on = enabled and progress_enabled()
    if on and sys.stderr.isatty():
        return tqdm(iterable, total=total, desc=desc, leave=False, unit=unit)
    return LineProgress(iterable, total, desc, on, unit)


class LineProgress:
    """The parts of the tqdm interface the loops use, printing ``desc: 40/300 steps (13%) loss=...`` lines."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, enabled: bool, unit: str = "step"):
        self.iterable, self.total, self.desc, self.enabled, self.unit = iterable, total, desc, enabled, unit
        self.n, self.postfix = 0, ""
        self.every = max(1, (total or 0) // LINES)
        self.t0 = self.last = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        for item in self.iterable:
            yield item
            self.update(1)

    def set_postfix(self, **values: Any) -> None:
        self.postfix = " ".join(f"{k}={v}" for k, v in values.items())

    def update(self, n: int = 1) -> None:
        before, self.n = self.n, self.n + n
        now = time.monotonic()
        crossed = before // self.every != self.n // self.every
        if self.enabled and (crossed or self.n == self.total or now - self.last >= SECONDS):
            self.last = now
            share = f" ({self.n / self.total:.0%})" if self.total else ""
            of = f"/{self.total}" if self.total else ""
            line = f"{self.desc}: {self.n}{of} {self.unit}s{share} {now - self.t0:.0f} s {self.postfix}".rstrip()
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        pass
