"""The model against GVSOC: calibrate on digitsnet's measured tables, hold out MobileNetV1's, write the numbers.

Reads the committed measured tables ``tables/gvsoc/{digitsnet,mnv1}_gvsoc-<isa>-kit-gcc12.json``, and per ISA:
fits the ``kit-gcc12`` model's free constants on digitsnet only (``fb_profile`` calibration, at most 8 constants,
written to ``tables/gvsoc/<isa>-kit-gcc12.constants.json``), then scores three models on MobileNetV1's measured
points: the original model (``pulp-gcc`` profile, shipped constants), the ``kit-gcc12`` profile, and ``kit-gcc12``
calibrated on digitsnet. Writes the numbers section of ``docs/model-vs-gvsoc.md`` (between its markers) and the
plots next to it.

    .venv/bin/python tools/model_vs_gvsoc.py            # rewrite the numbers and plots
    .venv/bin/python tools/model_vs_gvsoc.py --check    # exit 1 if the doc's numbers differ from a fresh run
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

import fb_profile
from fb_profile import accuracy, calibrate, plot_against
from fb_schema import LatencyTable

ROOT = Path(__file__).resolve().parents[1]
TABLES = ROOT / "tables" / "gvsoc"
DOC = ROOT / "docs" / "model-vs-gvsoc.md"
ISAS = ("xpulpv2", "xpulpnn1")
PROFILE = "kit-gcc12"
# Fitted on digitsnet (8 of the model's constants, each the model's own estimate of a cost GVSOC pins down):
# eta (inner-loop efficiency: TCDM contention), b_blk (requantization per 4x2 block), t_tile_ovh (per-tile DMA
# waits and barriers), t_fixed (per-layer fork, DMA set-up), dw_out (depthwise per-output loop), dma_1b (HWC->CHW
# transfer per byte), add_elem and pool_elem (the add and pool kernels per element). bw_l3 stays: no digitsnet layer
# streams from L3.
FIT = ("eta", "b_blk", "t_tile_ovh", "t_fixed", "dw_out", "dma_1b", "add_elem", "pool_elem")
BEGIN, END = "<!-- numbers:begin (tools/model_vs_gvsoc.py) -->", "<!-- numbers:end -->"


def measured(network: str, isa: str) -> LatencyTable:
    return LatencyTable.load(TABLES / f"{network}_gvsoc-{isa}-{PROFILE}.json")


def model_table(table: LatencyTable, constants) -> LatencyTable:
    """The model's latencies of the measured table's points (layer types and bits of that table)."""
    fitted = constants != fb_profile.builtin_constants(constants.isa, constants.toolchain)
    backend = fb_profile.PulpModel(constants, "digitsnet fit" if fitted else None)  # "-calibrated" in its name
    return fb_profile.sweep(table.layer_types, backend, table.target.allowed_bits, cache_dir=False, progress=False)


def fit(isa: str):
    """Calibrate the kit-gcc12 model of ``isa`` on digitsnet only; the fitted constants and the calibration."""
    digits = measured("digitsnet", isa)
    names = [n for n in FIT if _has_points(digits, n)]
    cal = calibrate(fb_profile.builtin_constants(isa, PROFILE), digits, names)
    return cal


def _has_points(table: LatencyTable, name: str) -> bool:
    """add_elem / pool_elem only where the table measured an add / pool layer (else they cannot be fitted)."""
    op = {"add_elem": "add", "pool_elem": "avgpool"}.get(name)
    return op is None or any(table.layer_types[k].op == op for k, _, _ in table.entries)


def results() -> dict:
    """Per ISA: the calibration and the held-out MobileNetV1 accuracy of the three models."""
    out = {}
    for isa in ISAS:
        mnv1 = measured("mnv1", isa)
        cal = fit(isa)
        models = {
            "original model (pulp-gcc, shipped)": fb_profile.builtin_constants(isa),
            f"{PROFILE} profile": fb_profile.builtin_constants(isa, PROFILE),
            f"{PROFILE} calibrated on digitsnet": cal.constants,
        }
        scored = {name: accuracy(mnv1, model_table(mnv1, c)) for name, c in models.items()}
        out[isa] = {"calibration": cal, "mnv1": mnv1, "scored": scored, "models": models}
    return out


def numbers(res: dict) -> str:
    """The doc's numbers section (markdown)."""
    header = "| ISA | model | MobileNetV1 points | median abs. error | 90th pct | Spearman | best pair agrees |"
    lines = [BEGIN, "", header, "|---|---|---|---|---|---|---|"]
    for isa, r in res.items():
        for name, a in r["scored"].items():
            agree, n = a.best_pair_agreement
            lines.append(f"| {isa} | {name} | {a.points} | {100 * a.median_abs:.1f} % | {100 * a.p90_abs:.1f} % | "
                         f"{a.spearman:.3f} | {agree}/{n} |")  # fmt: skip
    lines += ["", "Per layer type on MobileNetV1 (held out), calibrated model: median / max |error|, Spearman over the "
              "type's pairs, best pair measured / predicted:", ""]  # fmt: skip
    for isa, r in res.items():
        a = r["scored"][f"{PROFILE} calibrated on digitsnet"]
        lines += [f"{isa}:", "", "| layer type | points | median abs. error | max | Spearman | best pair |",
                  "|---|---|---|---|---|---|"]  # fmt: skip
        for t in a.per_type:
            rho = "-" if t.spearman != t.spearman else f"{t.spearman:.2f}"
            best = f"{_pair(t.best_measured)} / {_pair(t.best_predicted)}" if t.best_measured else "-"
            lines.append(f"| `{t.key}` | {t.points} | {100 * t.median_abs:.1f} % | {100 * t.max_abs:.0f} % | {rho} | "
                         f"{best} |")  # fmt: skip
        lines.append("")
    lines += ["Measured points per table (from each table's provenance):", "",
              "| table | measured | failed | not measured | seconds of measuring (measured + failed) |",
              "|---|---|---|---|---|"]  # fmt: skip
    for isa in res:
        for network in ("digitsnet", "mnv1"):
            c = measured(network, isa).provenance["points"]
            lines.append(f"| {network} {isa} | {c['measured']} | {c['failed']} | {c['not_measured']} | "
                         f"{c['measure_s']:.0f} + {c['failed_s']:.0f} |")  # fmt: skip
    lines += ["", "Calibration on digitsnet (fit set; error on digitsnet itself before -> after):", ""]
    for isa, r in res.items():
        cal = r["calibration"]
        consts = ", ".join(f"{n} {getattr(cal.initial, n):.4g} -> {getattr(cal.constants, n):.4g}" for n in cal.fitted)
        lines.append(f"- {isa}: {cal.points} points, median |error| {100 * cal.before['median']:.1f} % -> "
                     f"{100 * cal.after['median']:.1f} %; {consts}")  # fmt: skip
    lines += ["", END]
    return "\n".join(lines)


def _pair(p) -> str:
    return f"{p.b_in}/{p.b_wt}"


def plots(res: dict) -> None:
    for isa, r in res.items():
        mnv1 = r["mnv1"]
        tables = [model_table(mnv1, c) for c in r["models"].values()]
        plot_against(mnv1, tables, ROOT / "docs" / f"model_vs_gvsoc_{isa}.png")
    fig = []
    for r in res.values():
        fig += [r["mnv1"], model_table(r["mnv1"], r["models"][f"{PROFILE} calibrated on digitsnet"])]
    fb_profile.plot_throughput(fig, ROOT / "docs" / "model_vs_gvsoc_fig1.png",
                               "Fig. 1, MobileNetV1-0.75@224: GVSOC (kit-gcc12) | calibrated model")  # fmt: skip


def write_constants(res: dict) -> None:
    for isa, r in res.items():
        cal = r["calibration"]
        fb_profile.save_constants(cal.constants, TABLES / f"{isa}-{PROFILE}.constants.json",
                                  {"fit": {"measured": f"tables/gvsoc/digitsnet_gvsoc-{isa}-{PROFILE}.json",
                                           "fitted": list(cal.fitted), "points": cal.points,
                                           "before": cal.before, "after": cal.after}})  # fmt: skip


def doc_section(text: str) -> str:
    if BEGIN not in text or END not in text:
        raise click.ClickException(f"{DOC}: the numbers markers are missing")
    return text[text.index(BEGIN) : text.index(END) + len(END)]


@click.command()
@click.option("--check", is_flag=True, help="Compare the doc's numbers with a fresh run; write nothing.")
def main(check: bool) -> None:
    res = results()
    fresh = numbers(res)
    text = DOC.read_text()
    if check:
        if doc_section(text) != fresh:
            click.echo(f"{DOC}: numbers differ from a fresh run:\n{fresh}", err=True)
            sys.exit(1)
        click.echo(f"{DOC}: numbers agree")
        return
    DOC.write_text(text.replace(doc_section(text), fresh))
    write_constants(res)
    plots(res)
    for r in res.values():
        click.echo(r["calibration"].report())
        for a in r["scored"].values():
            click.echo(a.report())
    click.echo(f"wrote {DOC}")


if __name__ == "__main__":
    main()
