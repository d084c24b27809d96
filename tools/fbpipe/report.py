"""results.json → report.md: Table I, Pareto plots per target, the per-layer diffs, reproducibility records."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fb_heuristic import deployable_latency, diff, format_diff, hypervolume  # noqa: E402
from fb_schema import LatencyTable, NetConfig, write_atomic  # noqa: E402
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
    """Rows in the paper's Table I layout: per target, latency vs 8b/8b and accuracy at each stage.

    A target where 8b/8b is not deployable (a pair missing from its table) has no rows: nothing compares to it.
    A row whose config is not deployable on the target has latency None.
    """
    rows = []
    configs = results["configs"]
    base, four = homogeneous_id(configs, 8), homogeneous_id(configs, 4)
    for target, picks in results["selection"].items():
        base_lat = configs[base]["latency"][target]
        if base_lat is None:
            continue
        entries = [("8b baseline", base)]
        entries += [("latency target" if k == "latency_target" else f"{k} margin", v) for k, v in picks.items()]
        entries += [("4b + FB", _child_of(configs, four, target)), ("4b baseline", four)]
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
                    "latency_vs_8b": None if c["latency"][target] is None else c["latency"][target] / base_lat - 1,
                    "fq_accuracy": c["val_accuracy"],
                    "tqt_accuracy": ft.get("tqt_accuracy"),
                    "integer_accuracy": dep.get("integer_accuracy"),
                }
            )
    return rows


def pareto_plot(results: dict[str, Any], target: str, path: Path) -> None:
    """Fig. 2 style: accuracy vs latency; BB-orig, BB-locked, FB points; arrows from each BB config to its child."""
    configs = results["configs"]
    base = configs[homogeneous_id(configs, 8)]["latency"][target]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    if base is None:  # latencies are relative to 8b/8b: without it there is nothing to place
        configs = {}
        ax.text(0.5, 0.5, "8b/8b is not deployable on this target", ha="center", transform=ax.transAxes)
    styles = {
        "bb-orig": ("o", "tab:blue", "BB original"),
        "bb-locked": ("s", "tab:orange", "BB locked"),
        "fb": ("^", "tab:green", "free bits"),
        "knapsack": ("D", "tab:purple", "knapsack"),
        "latency-bb": ("v", "tab:red", "latency-aware BB"),
    }
    seen = set()
    for c in configs.values():
        if c.get("target") not in (None, target) or c["latency"][target] is None:
            continue  # another target's, or not deployable here
        x, y = c["latency"][target] / base, 100 * c["val_accuracy"]
        kind = c["method"]
        if kind == "homogeneous":
            ax.scatter([x], [y], marker="*", s=160, color="black", zorder=4)
            ax.annotate(f"{c['bits']}b/{c['bits']}b", (x, y), textcoords="offset points", xytext=(6, 4))
            continue
        marker, color, label = styles.get(kind, ("x", "grey", kind))
        ax.scatter([x], [y], marker=marker, color=color, label=None if kind in seen else label, zorder=3)
        seen.add(kind)
        parent = configs.get(c.get("parent") or "")
        if kind == "fb" and parent is not None and parent["latency"][target] is not None:
            px, py = parent["latency"][target] / base, 100 * parent["val_accuracy"]
            if (px, py) != (x, y):
                ax.annotate("", (x, y), (px, py), arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.8})
    ax.set_xlabel("latency relative to 8b/8b")
    ax.set_ylabel("validation accuracy [%] (before fine-tuning)")
    ax.set_title(f"{results['network']} on {target}")
    ax.grid(alpha=0.3)
    if seen:
        ax.legend(loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


BB = ("bb-orig", "bb-locked")
SOURCES = {  # candidate source → the methods of the configs on its front, and of the parents of its FB children
    "BB": (BB, ()),
    "BB+FB": (BB, BB),
    "latency-BB+FB": (("latency-bb",), ("latency-bb",)),
    "knapsack": (("knapsack",), ()),
}


def in_source(source: str, c: dict[str, Any], configs: dict[str, Any]) -> bool:
    """Whether config record ``c`` is on the front of ``source`` (a key of SOURCES)."""
    methods, fb_parents = SOURCES[source]
    if c["method"] == "fb":
        return configs[c["parent"]]["method"] in fb_parents
    return c["method"] in methods


def homogeneous_id(configs: dict[str, Any], bits: int) -> str | None:
    """The id of the homogeneous config at ``bits`` (8: the baseline every latency is relative to), or None."""
    return next((cid for cid, c in configs.items() if c.get("method") == "homogeneous" and c.get("bits") == bits), None)


def _child_of(configs: dict[str, Any], parent: str | None, target: str) -> str | None:
    """The id of ``parent``'s free-bits child on ``target``, or None."""
    return next(
        (cid for cid, c in configs.items() if c["method"] == "fb" and c["parent"] == parent and c["target"] == target),
        None,
    )


def hypervolumes(results: dict[str, Any], reference: tuple[float, float]) -> dict[str, dict[str, float]]:
    """Per target and candidate source: hypervolume of (latency / 8b/8b, accuracy) up to a fixed reference."""
    out = {}
    configs = results["configs"]
    for target in results["slugs"]:
        base = configs[homogeneous_id(configs, 8)]["latency"][target]
        out[target] = {}
        for source in SOURCES if base is not None else ():
            points = [
                (c["latency"][target] / base, c["val_accuracy"])
                for c in configs.values()
                if in_source(source, c, configs)
                and c.get("target") in (None, target)
                and c["latency"][target] is not None
            ]
            if points:
                out[target][source] = hypervolume(points, reference)
    return out


def write_report(results: dict[str, Any], out: Path) -> str:
    """Render report.md (numbers come from ``results`` only, so report and results.json agree)."""
    sections = (_table_one_lines, _deployability, _front_lines, _fb_effect_lines, _deployment_lines, _diff_lines,
                _reproducibility_lines)  # fmt: skip
    text = "\n".join(line for section in sections for line in section(results))
    write_atomic(out / "report.md", text)
    return text


def _table_one_lines(results: dict[str, Any]) -> list[str]:
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
            f"| {r['target']} | {r['row']} | `{r['config']}` | {_cycles(r['latency'])} | {_rel(r['latency_vs_8b'])} "
            f"| {pct(r['fq_accuracy'])} | {pct(r['tqt_accuracy'])} | {pct(r['integer_accuracy'])} |"
        )
    return lines


def _front_lines(results: dict[str, Any]) -> list[str]:
    """The Pareto plots and the hypervolume of each source's front."""
    lines = ["", "## Pareto fronts", ""]
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
    return lines + ["", "Latency tables: ![Fig. 1](fig1_throughput.png)"]


def _fb_effect_lines(results: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Free bits vs its parents",
        "",
        "| target | parent | child | latency change | accuracy change (pp) | layers raised |",
        "|---|---|---|---:|---:|---:|",
    ]
    for f in results["fb_effect"]:
        lines.append(
            f"| {f['target']} | `{f['parent']}` | `{f['child']}` | {_fb_change(f)} | "
            f"{100 * f['accuracy_change']:+.2f} | {f['layers_raised']} |"
        )
    return lines


def _deployment_lines(results: dict[str, Any]) -> list[str]:
    lines = [
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
    return lines + gvsoc_report(results["deployed"])


def _diff_lines(results: dict[str, Any]) -> list[str]:
    lines = ["", "## Per-layer diffs of the selected configurations", ""]
    for block in results["diffs"]:
        lines += [f"### `{block['config']}` vs 8b/8b on {block['target']}", "", "```", block["text"], "```", ""]
    return lines


def _reproducibility_lines(results: dict[str, Any]) -> list[str]:
    """Every config's hash, the tables every latency comes from, package versions and stage times."""
    lines = ["## Reproducibility", "", "| config | sha256 | method | seed |", "|---|---|---|---|"]
    for cid, c in results["configs"].items():
        lines.append(f"| `{cid}` | `{c['sha256'][:16]}…` | {c['method']} | {c['seed']} |")
    gaps = any(t.get("unavailable_pairs") for t in results["tables"].values())  # the column only where it says so
    lines += ["", "Every latency above comes from these tables:", "",
              "| target | table | sha256 | measured on |" + (" unavailable pairs |" if gaps else ""),
              "|---|---|---|---|" + ("---:|" if gaps else "")]  # fmt: skip
    for target, t in results["tables"].items():
        lines.append(f"| {target} | `{t['path']}` | `{t['sha256'][:16]}…` | {t.get('source', 'the built-in model')} |"
                     + (f" {t.get('unavailable_pairs', 0)} |" if gaps else ""))  # fmt: skip
    return lines + [
        "",
        "Package versions: " + ", ".join(f"{k} {v}" for k, v in results["versions"].items()),
        "",
        "Stage times: " + ", ".join(f"{k} {v:.1f} s" for k, v in results["timings"].items()),
        "",
    ]


def diffs_of(results: dict[str, Any], nets: dict[str, NetConfig], tables: dict[str, LatencyTable]) -> list[dict]:
    blocks = []
    base = nets[homogeneous_id(results["configs"], 8)]
    for target, picks in results["selection"].items():
        for cid in dict.fromkeys(picks.values()):
            rows = diff(base, nets[cid], tables[target])
            blocks.append({"target": target, "config": cid, "text": format_diff(rows, only_changed=True)})
    return blocks


def fb_effect(candidates, nets: dict[str, NetConfig], tables: dict[str, LatencyTable]) -> list[dict]:
    out = []
    for c in candidates:
        if c.method != "free-bits":
            continue
        parent, child, table = nets[c.parent], nets[c.id], tables[c.target]
        before, after = deployable_latency(parent, table), deployable_latency(child, table)
        raised = sum(a.precision != b.precision for a, b in zip(parent.layers, child.layers))
        out.append(
            {
                "target": c.target,
                "parent": c.parent,
                "child": c.id,
                # None when either cannot run on the target (then latency_after says whether the child can)
                "latency_change": after / before - 1 if before is not None and after is not None else None,
                **({"latency_after": after} if before is None or after is None else {}),
                "accuracy_change": child.metrics["val_accuracy"] - parent.metrics["val_accuracy"],
                "layers_raised": raised,
            }
        )
    return out


def _cycles(x: int | None) -> str:
    return "not deployable" if x is None else f"{x:,}"


def _rel(x: float | None) -> str:
    return "–" if x is None else f"{x:+.1%}"


def _fb_change(f: dict[str, Any]) -> str:
    if f["latency_change"] is not None:
        return f"{f['latency_change']:+.1%}"
    if f.get("latency_after") is not None:
        return f"parent not deployable → {f['latency_after']:,} cycles"
    return "not deployable"


def _deployability(results: dict[str, Any]) -> list[str]:
    """Per target with unavailable pairs: the rule, and which candidates it leaves out or made deployable."""
    lines = []
    for target, t in results["tables"].items():
        if not t.get("unavailable_pairs"):
            continue
        configs = results["configs"]
        mine = {cid: c for cid, c in configs.items() if c.get("target") in (None, target)}
        out = [cid for cid, c in mine.items() if c["latency"][target] is None]
        raised = [cid for cid, c in mine.items()
                  if c.get("raised_unavailable") and c.get("target") == target and cid not in out]  # fmt: skip
        lines += [
            "",
            f"**{target}**: its table lacks {t['unavailable_pairs']} pairs (kernels that fail there; the table's "
            "`failed`). A pair missing from a target's table is not deployable on that target: free bits never "
            "moves a layer to one and moves a layer off one to the fastest available more precise pair; selection "
            "takes only deployable configs; the latency-aware search and the knapsack are skipped on this target. "
            f"Not deployable here ({len(out)} of {len(mine)}): " + (", ".join(f"`{c}`" for c in out) or "none") + ".",
        ]
        if raised:
            lines.append("Made deployable by raising layers off unavailable pairs: " + ", ".join(
                f"`{c}` ({', '.join(f'{k} {a}→{b}' for k, (a, b) in configs[c]['raised_unavailable'].items())})"
                for c in raised) + ".")  # fmt: skip
        if configs[homogeneous_id(configs, 8)]["latency"][target] is None:
            lines.append("8b/8b is not deployable here, so no configuration is selected for this target.")
    return lines
