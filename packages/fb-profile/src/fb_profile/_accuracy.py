"""How well one latency table predicts another: per-layer error distribution, rank correlation, best pairs.

Used to hold the analytical model against a measurement (``fb-profile compare MEASURED MODEL``): the relative
error ``predicted / measured - 1`` of every common point, its distribution over all points and per layer type,
Spearman's rank correlation over all points and within each layer type (what the free-bits heuristic depends on:
the order of the pairs of one layer), and whether the best pair of each layer type agrees.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fb_profile._compare import spearman
from fb_schema import LatencyTable, Precision


@dataclass(frozen=True)
class TypeError_:
    """Errors of one layer type."""

    key: str
    points: int
    median_abs: float
    max_abs: float
    spearman: float  # over this type's pairs (nan for fewer than 3 or a constant table)
    best_measured: Precision | None
    best_predicted: Precision | None


@dataclass(frozen=True)
class Accuracy:
    """``predicted`` against ``measured`` on their common points."""

    measured: str
    predicted: str
    points: int
    median_abs: float
    p90_abs: float
    max_abs: float
    median_signed: float
    spearman: float
    per_type: list[TypeError_] = field(default_factory=list)

    @property
    def best_pair_agreement(self) -> tuple[int, int]:
        """(layer types whose best pair agrees, layer types with at least two measured pairs)."""
        rows = [t for t in self.per_type if t.best_measured is not None and t.points >= 2]
        return sum(t.best_measured == t.best_predicted for t in rows), len(rows)

    def to_json(self) -> dict[str, Any]:
        def pair(p):
            return None if p is None else f"{p.b_in}/{p.b_wt}"

        agree, n = self.best_pair_agreement
        return {"measured": self.measured, "predicted": self.predicted, "points": self.points,
                "median_abs": self.median_abs, "p90_abs": self.p90_abs, "max_abs": self.max_abs,
                "median_signed": self.median_signed, "spearman": self.spearman, "best_pair_agree": [agree, n],
                "per_type": [{"layer_type": t.key, "points": t.points, "median_abs": t.median_abs,
                              "max_abs": t.max_abs, "spearman": None if np.isnan(t.spearman) else t.spearman,
                              "best_measured": pair(t.best_measured), "best_predicted": pair(t.best_predicted)}
                             for t in self.per_type]}  # fmt: skip

    def report(self) -> str:
        agree, n = self.best_pair_agreement
        lines = [
            f"{self.predicted} vs measured {self.measured}: {self.points} points, median |error| "
            f"{100 * self.median_abs:.1f} % (90th percentile {100 * self.p90_abs:.1f} %, max "
            f"{100 * self.max_abs:.0f} %), median signed {100 * self.median_signed:+.1f} %, Spearman "
            f"{self.spearman:.3f}, best pair agrees on {agree}/{n} layer types",
            f"  {'layer type':58s} {'pts':>3s} {'med|e|':>7s} {'max|e|':>7s} {'rho':>6s}  best meas / model",
        ]
        for t in self.per_type:
            rho = "   -  " if np.isnan(t.spearman) else f"{t.spearman:6.2f}"
            best = f"{_p(t.best_measured)} / {_p(t.best_predicted)}" if t.best_measured else ""
            lines.append(
                f"  {t.key:58s} {t.points:3d} {100 * t.median_abs:6.1f}% {100 * t.max_abs:6.0f}% {rho}  {best}"
            )
        return "\n".join(lines)


def _p(p: Precision | None) -> str:
    return "-" if p is None else f"{p.b_in}/{p.b_wt}"


def _best(table: LatencyTable, key: str, pairs: list[Precision]) -> Precision:
    return min(pairs, key=lambda p: (table.latency(key, p), -p.total_bits))


def accuracy(measured: LatencyTable, predicted: LatencyTable) -> Accuracy:
    """Errors of ``predicted`` against ``measured`` over their common points.

    Raises:
        ValueError: the tables have no point in common.
    """
    common = [p for p in measured.entries if p in predicted.entries and measured.entries[p] > 0]
    if not common:
        raise ValueError(f"{measured.target.name} and {predicted.target.name} have no point in common")
    rel = np.array([predicted.entries[p] / measured.entries[p] - 1 for p in common])
    per_type = []
    for key in measured.layer_types:
        pts = [p for p in common if p[0] == key]
        if not pts:
            continue
        e = np.abs([predicted.entries[p] / measured.entries[p] - 1 for p in pts])
        m = [measured.entries[p] for p in pts]
        rho = spearman(m, [predicted.entries[p] for p in pts]) if len(pts) >= 3 else float("nan")
        pairs = [Precision(a, w) for _, a, w in pts if w is not None]
        best_m = _best(measured, key, pairs) if pairs else None
        best_p = _best(predicted, key, pairs) if pairs else None
        per_type.append(TypeError_(key, len(pts), float(np.median(e)), float(e.max()), rho, best_m, best_p))
    return Accuracy(
        measured.target.name,
        predicted.target.name,
        len(common),
        float(np.median(np.abs(rel))),
        float(np.quantile(np.abs(rel), 0.9)),
        float(np.abs(rel).max()),
        float(statistics.median(rel.tolist())),
        spearman([measured.entries[p] for p in common], [predicted.entries[p] for p in common]),
        per_type,
    )
