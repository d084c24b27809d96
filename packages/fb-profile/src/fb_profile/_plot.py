"""Fig. 1 of Free Bits (arXiv 2307.02894): throughput per precision pair, one candlestick group per ISA.

For each table (one ISA) and each (b_in, b_wt) pair, the throughput MACs / cycles of every configurable layer
type; the candle body spans mean +- std over the layer types, the wicks min and max, a tick marks the median.
"""

from __future__ import annotations

import io
import os
import statistics
from collections.abc import Sequence

from fb_schema import LatencyTable, Precision, write_atomic


def throughput_stats(table: LatencyTable) -> dict[Precision, dict[str, float]]:
    """Per pair: mean, std, min, max and median MAC/cycle over the configurable layer types of ``table``."""
    out: dict[Precision, dict[str, float]] = {}
    pairs = sorted({Precision(a, w) for (_, a, w) in table.entries if w is not None})
    for p in pairs:
        values = [
            lt.macs / table.entries[(key, p.b_in, p.b_wt)]
            for key, lt in table.layer_types.items()
            if lt.configurable and (key, p.b_in, p.b_wt) in table.entries and table.entries[(key, p.b_in, p.b_wt)] > 0
        ]
        if values:
            out[p] = {
                "mean": statistics.fmean(values),
                "std": statistics.pstdev(values),
                "min": min(values),
                "max": max(values),
                "median": statistics.median(values),
                "n": len(values),
            }
    return out


def plot_throughput(tables: Sequence[LatencyTable], path: str | os.PathLike, title: str | None = None) -> None:
    """Write the Fig. 1 candlestick plot of ``tables`` (one group per table / ISA) to ``path`` (PNG, atomic)."""
    if not tables:
        raise ValueError("plot_throughput needs at least one latency table")
    import matplotlib  # imported here: the CLI and the sweep should not pay for it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(max(6.0, 3.2 * len(tables)), 4.2))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    ticks, labels, x = [], [], 0.0
    for g, table in enumerate(tables):
        stats = throughput_stats(table)
        color = colors[g % len(colors)]
        start = x
        for p, s in stats.items():
            lo, hi = s["mean"] - s["std"], s["mean"] + s["std"]
            ax.vlines(x, s["min"], s["max"], color=color, linewidth=1)
            ax.add_patch(plt.Rectangle((x - 0.3, lo), 0.6, hi - lo, facecolor=color, alpha=0.6, edgecolor=color))
            ax.hlines(s["median"], x - 0.3, x + 0.3, color="black", linewidth=1)
            ticks.append(x)
            labels.append(f"{p.b_in}/{p.b_wt}")
            x += 1.0
        name = table.target.isa if len({t.target.isa for t in tables}) == len(tables) else table.target.name
        ax.text((start + x - 1) / 2, 1.01, name, transform=ax.get_xaxis_transform(), ha="center", color=color)
        x += 1.0
    ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
    ax.set_xlim(-1, x - 1)
    ax.set_ylim(bottom=0)
    ax.set_xlabel("precision pair b_in / b_wt")
    ax.set_ylabel("throughput [MAC/cycle]")
    ax.set_title(title or "Per-layer throughput by precision (body mean ± std, wicks min/max, tick median)", pad=18)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
