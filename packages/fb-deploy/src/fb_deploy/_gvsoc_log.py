"""Per-layer checksums and cycles from the output of a DORY application run with ``Check_all`` verbosity.

DORY's ``network.c`` (``--perf_layer``, ``--verbose_level Check_all+Perf_final``) prints, for every layer ``i``:
``<name> performance:`` with ``- num cycles: N`` and ``- MACs: M`` (``net_utils.c: print_perf``), then
``Layer <name> <i> ended:`` and ``Checking L2 output: Checksum OK`` (``final output`` for the last layer) or
``Checksum Failed: true [E] vs. calculated [C]`` (``net_utils.c: checksum``, the byte sum of the output), or
``Output in L3. Expected checksum: E`` when the output is not in L2; at the end ``Final performance:``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from fb_deploy._errors import DeployError

_PERF = re.compile(r"^[ \t]*(?P<name>\S+) performance:[ \t]*\r?\n[ \t]*- num cycles: (?P<cyc>\d+)[ \t]*\r?\n"
                   r"[ \t]*- MACs: (?P<macs>\d+)", re.M)  # fmt: skip
_ENDED = re.compile(r"^[ \t]*Layer (?P<name>\S+) (?P<idx>\d+) ended:", re.M)
_CHECK = re.compile(
    r"^[ \t]*Checking (?P<what>L2 output|final output): Checksum "
    r"(?:(?P<ok>OK)|Failed: true \[(?P<expected>\d+)\] vs\. calculated \[(?P<computed>\d+)\])",
    re.M,
)
_L3 = re.compile(r"^[ \t]*Output in L3\. Expected checksum: (?P<expected>-?\d+)", re.M)


class ChecksumError(DeployError):
    """The network ran on GVSOC but a layer computed a wrong output, or fewer layers reported than it has."""


@dataclass
class LayerRun:
    """One DORY layer as it ran: cycles, MACs and its output checksum (``ok``, ``failed`` or ``missing``)."""

    index: int
    name: str
    cycles: int | None = None
    macs: int | None = None
    checksum: str = "missing"
    expected: int | None = None
    computed: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "cycles": self.cycles,
            "macs": self.macs,
            "checksum": self.checksum,
            "expected_checksum": self.expected,
            "computed_checksum": self.computed,
        }


@dataclass
class RunLog:
    """Everything one run printed: its layers in order and the ``Final performance`` totals (None if absent)."""

    layers: list[LayerRun] = field(default_factory=list)
    total_cycles: int | None = None
    total_macs: int | None = None

    def failures(self, names: list[str] | None = None) -> list[str]:
        """One line per problem: a failed checksum (layer, expected, computed) or a layer that never reported.

        Args:
          names: the network's DORY layers (``Layers_name[]``); layers absent from the log are reported too.
        """
        problems = []
        seen = {layer.name for layer in self.layers}
        for layer in self.layers:
            if layer.checksum == "failed":
                problems.append(f"{layer.name}: checksum failed: expected {layer.expected}, computed {layer.computed}")
            elif layer.checksum == "missing":
                why = (
                    f"output in L3, expected {layer.expected}" if layer.expected is not None else "no checksum printed"
                )
                problems.append(f"{layer.name}: no output checksum ({why})")
        missing = [n for n in names or [] if n not in seen]
        if missing:
            reported = len(self.layers)
            problems.append(f"only {reported} of {len(names)} layers reported; missing {', '.join(missing)}")
        if self.total_cycles is None:
            problems.append("no 'Final performance' block: the run crashed or timed out")
        return problems


def parse_run_log(text: str) -> RunLog:
    """Parse a DORY application's GVSOC output (see the module docstring for the format).

    Raises:
        ChecksumError: no layer printed anything (not a ``--perf_layer`` / ``Check_all`` build, or it crashed early).
    """
    events = [(m.start(), "perf", m) for m in _PERF.finditer(text)]
    events += [(m.start(), "ended", m) for m in _ENDED.finditer(text)]
    events += [(m.start(), "check", m) for m in _CHECK.finditer(text)]
    events += [(m.start(), "l3", m) for m in _L3.finditer(text)]
    out = RunLog()
    current: LayerRun | None = None
    pending: dict[str, int] | None = None
    for _, kind, m in sorted(events, key=lambda e: e[0]):
        if kind == "perf" and m["name"] == "Final":
            out.total_cycles, out.total_macs = int(m["cyc"]), int(m["macs"])
        elif kind == "perf":
            pending = {"cycles": int(m["cyc"]), "macs": int(m["macs"])}
        elif kind == "ended":
            current = LayerRun(int(m["idx"]), m["name"], **(pending or {}))
            out.layers.append(current)
            pending = None
        elif current is not None and current.checksum == "missing" and kind == "check":
            current.checksum = "ok" if m["ok"] else "failed"
            if not m["ok"]:
                current.expected, current.computed = int(m["expected"]), int(m["computed"])
        elif current is not None and kind == "l3":
            current.expected = int(m["expected"])
    if not out.layers:
        raise ChecksumError(
            "no layer reported in the GVSOC output (expected DORY's 'Layer <name> <i> ended:' lines of a "
            "--perf_layer build with --verbose_level Check_all+Perf_final)"
        )
    return out
