"""Progress of long loops: a bar on a terminal (the caller's, e.g. tqdm), else one plain line every N steps
(readable in logs).

``FB_NO_PROGRESS=1`` (what every ``--no-progress`` flag sets) turns both off. Standard library only: the
packages that draw a bar pass their bar class in (``bar=tqdm``).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sized
from typing import Any

LINES = 20  # a log gets about this many lines per loop, and one at least every SECONDS
SECONDS = 60.0


def progress_enabled() -> bool:
    """False where ``FB_NO_PROGRESS`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get("FB_NO_PROGRESS", "") in ("", "0")


def progress(
    iterable: Iterable | None = None,
    total: int | None = None,
    desc: str = "",
    enabled: bool = True,
    unit: str = "step",
    bar: Callable[..., Any] | None = None,
) -> Any:
    """``bar`` (a tqdm-like class) on a terminal; a :class:`LineProgress` when stderr is not one or there is no
    ``bar``; a silent one when disabled.

    Args:
        iterable: what to iterate over (None: the caller calls ``update``).
        total: the number of steps (default: ``len(iterable)`` where it has one).
        desc: the prefix of every line.
        enabled: False for a silent progress (``FB_NO_PROGRESS`` silences it too).
        unit: what one step is called (``"point"`` prints ``40/300 points``).
        bar: called as ``bar(iterable, total=, desc=, leave=False, unit=)`` when stderr is a terminal.
    """
    if total is None and isinstance(iterable, Sized):
        total = len(iterable)
    on = enabled and progress_enabled()
    if on and bar is not None and sys.stderr.isatty():
        return bar(iterable, total=total, desc=desc, leave=False, unit=unit)
    return LineProgress(iterable, total, desc, on, unit)


class LineProgress:
    """The parts of the tqdm interface the loops use, printing ``desc: 40/300 steps (13%) loss=...`` lines."""

    def __init__(self, iterable: Iterable | None, total: int | None, desc: str, enabled: bool, unit: str = "step"):
        self.iterable, self.total, self.desc, self.enabled, self.unit = iterable, total, desc, enabled, unit
        self.n, self.postfix = 0, ""
        self.every = max(1, (total or 0) // LINES)
        self.t0 = self.last = time.monotonic()

    def __iter__(self) -> Iterator[Any]:
        if self.iterable is None:
            raise TypeError(f"{self.desc}: a progress without an iterable is updated, not iterated")
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
