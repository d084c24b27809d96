"""results.json → report.md: Table I, Pareto plots per target, the per-layer diffs, reproducibility records."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fb_heuristic import diff, format_diff, hypervolume, network_latency  # noqa: E402
from fb_schema import LatencyTable, NetConfig  # noqa: E402
from fbpipe.gvsoc import report_lines as gvsoc_report  # noqa: E402

PACKAGES = ("fb-schema", "fb-heuristic", "fb-profile", "fb-search", "fb-deploy", "jax", "flax", "optax", "onnx")


def versions() -> dict[str, str]:
    out = {}
    for name in PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def pct(x: float | None) -> str:
    return "–" if x is None else f"{x:.2%}"


def table_one(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Rows in the paper's Table I layout: per target, latency vs 8b/8b and accuracy at each stage."""
    rows = []
    configs = results["configs"]
    for target, picks in results["selection"].items():
        base_lat = configs["8b"]["latency"][target]
        entries = [("8b baseline", "8b")]
        entries += [(f"{k} margin" if k.endswith("pp") else "latency target", v) for k, v in picks.items()]
        entries += [("4b + FB", f"fb-{results['slugs'][target]}--4b"), ("4b baseline", "4b")]
        for label, cid in entries:
            if cid not in configs:
                continue
            c = configs[cid]
            ft = results["finetuned"].get(cid, {})
            dep = results["deployed"].get(cid, {})
            rows.append(
                {
                    "target": target,
                    "row": label,
                    "config": cid,
                    "sha256": c["sha256"],
                    "latency": c["latency"][target],
                    "latency_vs_8b": c["latency"][target] / base_lat - 1,
                    "fq_accuracy": c["val_accuracy"],
                    "tqt_accuracy": ft.get("tqt_accuracy"),
                    "integer_accuracy": dep.get("integer_accuracy"),
                }
            )
    return rows


def pareto_plot(results: dict[str, Any], target: str, path: Path) -> None:
    """Fig. 2 style: accuracy vs latency; BB-orig, BB-locked, FB points; arrows from each BB config to its child."""
    configs = results["configs"]
    base = configs["8b"]["latency"][target]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    styles = {
        "bb-orig": ("o", "tab:blue", "BB original"),
        "bb-locked": ("s", "tab:orange", "BB locked"),
        "fb": ("^", "tab:green", "free bits"),
        "knapsack": ("D", "tab:purple", "knapsack"),
        "latency-bb": ("v", "tab:red", "latency-aware BB"),
    }
    seen = set()
    for cid, c in configs.items():
        if c.get("target") not in (None, target):
            continue
        x, y = c["latency"][target] / base, 100 * c["val_accuracy"]
        kind = "fb" if cid.startswith("fb-") else c["method"]
        if cid in ("8b", "4b"):
            ax.scatter([x], [y], marker="*", s=160, color="black", zorder=4)
            ax.annotate(f"{cid}/{cid}", (x, y), textcoords="offset points", xytext=(6, 4))
            continue
        marker, color, label = styles.get(kind, ("x", "grey", kind))
        ax.scatter([x], [y], marker=marker, color=color, label=None if kind in seen else label, zorder=3)
        seen.add(kind)
        parent = configs.get(c.get("parent") or "")
        if kind == "fb" and parent is not None:
            px, py = parent["latency"][target] / base, 100 * parent["val_accuracy"]
            if (px, py) != (x, y):
                ax.annotate("", (x, y), (px, py), arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
    ax.set_xlabel("latency relative to 8b/8b")
    ax.set_ylabel("validation accuracy [%] (before fine-tuning)")
    ax.set_title(f"{results['network']} on {target}")
    ax.grid(alpha=0.3)
    ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


SOURCES = {  # candidate source → which configs form its front
    "BB": lambda cid, c: c["method"] in ("bb-orig", "bb-locked"),
    "BB+FB": lambda cid, c: c["method"] in ("bb-orig", "bb-locked") or (cid.startswith("fb-") and "--bb-" in cid),
    "latency-BB+FB": lambda cid, c: c["method"] == "latency-bb" or (cid.startswith("fb-") and "--lat-" in cid),
    "knapsack": lambda cid, c: c["method"] == "knapsack",
}


def hypervolumes(results: dict[str, Any], reference: tuple[float, float]) -> dict[str, dict[str, float]]:
    """Per target and candidate source: hypervolume of (latency / 8b/8b, accuracy) up to a fixed reference."""
    out = {}
    for target in results["slugs"]:
        base = results["configs"]["8b"]["latency"][target]
        out[target] = {}
        for source, member in SOURCES.items():
            points = [
                (c["latency"][target] / base, c["val_accuracy"])
                for cid, c in results["configs"].items()
                if member(cid, c) and c.get("target") in (None, target)
            ]
            if points:
                out[target][source] = hypervolume(points, reference)
    return out


def write_report(results: dict[str, Any], out: Path) -> str:
    """Render report.md (numbers come from ``results`` only, so report and results.json agree)."""
    lines = [
        f"# Free Bits run `{results['name']}`",
        "",
        f"Network `{results['network']}`, data `{results['data']}`, seed {results['seed']}; float accuracy "
        f"{pct(results['float_accuracy'])} on {results['val_images']} validation images.",
        "",
        "## Table I — selected configurations per target",
        "",
        "| target | row | config | latency [cycles] | vs 8b | fake-quant acc | TQT acc | integer acc |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results["table1"]:
        lines.append(
            f"| {r['target']} | {r['row']} | `{r['config']}` | {r['latency']:,} | {r['latency_vs_8b']:+.1%} "
            f"| {pct(r['fq_accuracy'])} | {pct(r['tqt_accuracy'])} | {pct(r['integer_accuracy'])} |"
        )
    lines += ["", "## Pareto fronts", ""]
    for target, slug in results["slugs"].items():
        lines.append(f"![{target}](pareto_{slug}.png)")
    ref = results["hypervolume_reference"]
    lines += [
        "",
        f"Hypervolume of each source's front (latency / 8b/8b ≤ {ref[0]}, accuracy ≥ {ref[1]:.0%}; larger is better):",
        "",
        "| target | " + " | ".join(SOURCES) + " |",
        "|---|" + "---:|" * len(SOURCES),
    ]
    for target, hv in results["hypervolume"].items():
        cells = " | ".join(f"{hv[s]:.4f}" if s in hv else "–" for s in SOURCES)
        lines.append(f"| {target} | {cells} |")
    lines += [
        "",
        "Latency tables: ![Fig. 1](fig1_throughput.png)",
        "",
        "## Free bits vs its parents",
        "",
        "| target | parent | child | latency change | accuracy change (pp) | layers raised |",
        "|---|---|---|---:|---:|---:|",
    ]
    for f in results["fb_effect"]:
        lines.append(
            f"| {f['target']} | `{f['parent']}` | `{f['child']}` | {f['latency_change']:+.1%} | "
            f"{100 * f['accuracy_change']:+.2f} | {f['layers_raised']} |"
        )
    lines += [
        "",
        "## Deployment",
        "",
        "| config | checker | bit-exact | integer acc | argmax ≠ fake-quant |",
        "|---|---|---|---:|---:|",
    ]
    for cid, d in results["deployed"].items():
        lines.append(
            f"| `{cid}` | {'ok' if not d['check_errors'] else '; '.join(d['check_errors'])} | "
            f"{'yes' if d['verified'] else 'NO'} | {pct(d['integer_accuracy'])} | "
            f"{d['argmax_disagreements']} |"
        )
    lines += gvsoc_report(results["deployed"])
    lines += ["", "## Per-layer diffs of the selected configurations", ""]
    for block in results["diffs"]:
        lines += [f"### `{block['config']}` vs 8b/8b on {block['target']}", "", "```", block["text"], "```", ""]
    lines += ["## Reproducibility", "", "| config | sha256 | method | seed |", "|---|---|---|---|"]
    for cid, c in results["configs"].items():
        lines.append(f"| `{cid}` | `{c['sha256'][:16]}…` | {c['method']} | {c['seed']} |")
    lines += ["", "Every latency above comes from these tables:", "", "| target | table | sha256 | measured on |",
              "|---|---|---|---|"]  # fmt: skip
    for target, t in results["tables"].items():
        lines.append(f"| {target} | `{t['path']}` | `{t['sha256'][:16]}…` | {t.get('source', 'the built-in model')} |")
    lines += [
        "",
        "Package versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        "",
        "Stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in results["timings"].items()),
        "",
    ]
    text = "\n".join(lines)
    (out / "report.md").write_text(text)
    return text


def diffs_of(results: dict[str, Any], nets: dict[str, NetConfig], tables: dict[str, LatencyTable]) -> list[dict]:
    blocks = []
    for target, picks in results["selection"].items():
        for cid in dict.fromkeys(picks.values()):
            rows = diff(nets["8b"], nets[cid], tables[target])
            blocks.append({"target": target, "config": cid, "text": format_diff(rows, only_changed=True)})
    return blocks


def fb_effect(candidates, nets: dict[str, NetConfig], tables: dict[str, LatencyTable]) -> list[dict]:
    out = []
    for c in candidates:
        if c.parent is None:
            continue
        parent, child, table = nets[c.parent], nets[c.id], tables[c.target]
        before, after = network_latency(parent, table), network_latency(child, table)
        raised = sum(a.precision != b.precision for a, b in zip(parent.layers, child.layers))
        out.append(
            {
                "target": c.target,
                "parent": c.parent,
                "child": c.id,
                "latency_change": after / before - 1,
                "accuracy_change": child.metrics["val_accuracy"] - parent.metrics["val_accuracy"],
                "layers_raised": raised,
            }
        )
    return out
