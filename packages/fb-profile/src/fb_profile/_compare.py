"""Compare latency tables: best pair per layer type on each target, rank correlation, predicted vs measured.

Free Bits (arXiv 2307.02894) chooses precisions by latency, so what matters across targets (or between the model
and a measurement) is whether the *order* of the pairs agrees: the best pair per layer type and Spearman's rank
correlation of the latencies.
"""

from __future__ import annotations

import io
import os
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fb_schema import LatencyTable, Precision, write_atomic


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n with ties averaged."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(1, len(x) + 1)
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    sums = np.bincount(inverse, weights=ranks)
    return sums[inverse] / counts[inverse]


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman's rank correlation of two equally long sequences (nan when either is constant)."""
    ra, rb = _ranks(np.asarray(a, float)), _ranks(np.asarray(b, float))
    if len(ra) < 2 or ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


@dataclass(frozen=True)
class Comparison:
    """Per layer type the best pair on each table, the disagreements, and pairwise statistics."""

    names: list[str]
    best: dict[str, list[Precision]]
    disagree: list[str]
    spearman: dict[tuple[int, int], float]
    median_rel_err: dict[tuple[int, int], float]
    common_points: int

    def report(self) -> str:
        lines = [f"{len(self.best)} common configurable layer types, {self.common_points} common points"]
        width = max(len(n) for n in self.names)
        for (i, j), rho in self.spearman.items():
            err = self.median_rel_err[(i, j)]
            lines.append(f"{self.names[j]:>{width}} vs {self.names[i]}: Spearman {rho:.3f}, median |rel. diff| "
                         f"{100 * err:.1f} %")  # fmt: skip
        lines.append(f"best pair differs on {len(self.disagree)} of {len(self.best)} layer types:")
        for key in self.disagree:
            lines.append(f"  {key}: " + ", ".join(f"{n} {p}" for n, p in zip(self.names, self.best[key])))
        return "\n".join(lines)


def compare_tables(tables: Sequence[LatencyTable], names: Sequence[str] | None = None) -> Comparison:
    """Compare tables on their common points; the first table is the reference of the pairwise statistics."""
    if len(tables) < 2:
        raise ValueError("compare needs at least two latency tables")
    names = list(names or [t.target.name for t in tables])
    common = set(tables[0].entries)
    for t in tables[1:]:
        common &= set(t.entries)
    if not common:
        raise ValueError("the tables have no (layer type, b_in, b_wt) point in common")
    points = sorted(common, key=lambda p: (p[0], p[1], p[2] or 0))
    configurable = {k for k, _, w in points if w is not None}
    keys = [k for k in tables[0].layer_types if k in configurable]  # network order
    best, disagree = {}, []
    for key in keys:
        pairs = [Precision(a, w) for k, a, w in points if k == key]
        best[key] = [min(pairs, key=lambda p, t=t: (t.latency(key, p), -p.total_bits)) for t in tables]
        if len(set(best[key])) > 1:
            disagree.append(key)
    rho, err = {}, {}
    ref = [tables[0].entries[p] for p in points]
    for j in range(1, len(tables)):
        other = [tables[j].entries[p] for p in points]
        rho[(0, j)] = spearman(ref, other)
        err[(0, j)] = statistics.median(abs(b - a) / a for a, b in zip(ref, other) if a > 0) if any(ref) else 0.0
    return Comparison(names, best, disagree, rho, err, len(points))


def plot_against(reference: LatencyTable, others: Sequence[LatencyTable], path: str | os.PathLike) -> None:
    """Scatter of ``others`` against ``reference`` (log-log, one point per common entry, y = x dashed)."""
    import matplotlib  # imported here: comparing without a plot should not pay for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 5))
    lo, hi = float("inf"), 0.0
    for t in others:
        pts = [p for p in reference.entries if p in t.entries and reference.entries[p] > 0 and t.entries[p] > 0]
        x = np.array([reference.entries[p] for p in pts], float)
        y = np.array([t.entries[p] for p in pts], float)
        if len(x):
            ax.scatter(x, y, s=10, alpha=0.7, label=f"{t.target.name} (Spearman {spearman(x, y):.2f})")
            lo, hi = min(lo, x.min(), y.min()), max(hi, x.max(), y.max())
    if hi > 0:
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(f"{reference.target.name} [{reference.target.unit}]")
    ax.set_ylabel(f"other table [{reference.target.unit}]")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
