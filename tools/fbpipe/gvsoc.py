"""GVSOC runs of the deployed networks (pipeline config ``"gvsoc": True``): every layer's checksum and its cycles.

Each deployed network runs with the DORY flow of every ISA it was picked for (``fb_deploy.ISA_FLOWS``: XpulpV2 →
``mixed-sw`` on pulp-open, XpulpNN v1/v2 → ``mixed-hw`` on pulp-open-nn); the baselines, picked for no target, run
``mixed-sw``. The tools come from the environment (``source PREFIX/env.sh pulp-open`` of the GVSOC kit).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import fb_deploy
from fb_heuristic import network_latency
from fb_schema import NetConfig, read_json

# The latency table a flow's measurement is compared with (GVSOC runs XpulpNN v1 kernels for both XpulpNN ISAs).
FLOW_ISA = {"mixed-sw": "xpulpv2", "mixed-hw": "xpulpnn1"}


def flows_of(cid: str, selection: dict[str, dict[str, str]], target: str | None = None) -> list[str]:
    """The DORY flows of network ``cid``: one per ISA whose selection picked it or that it was made for
    (``target``, as for 4b/4b's free-bits child per target); ``mixed-sw`` for the rest (the baselines)."""
    targets = [t for t, picks in selection.items() if cid in picks.values()] + ([target] if target else [])
    isas = [target.split(":")[-1] for target in targets]
    flows = sorted({fb_deploy.ISA_FLOWS[isa] for isa in isas if isa in fb_deploy.ISA_FLOWS}, reverse=True)
    return flows or ["mixed-sw"]


def table_cycles(run, config_path: Path, flow: str) -> int | None:
    """The network's latency in the run's table of the flow's ISA (None when the run has no such table)."""
    tables = {t.split(":")[-1]: table for t, table in run.tables().items()}
    table = tables.get(FLOW_ISA[flow])
    return None if table is None else int(network_latency(NetConfig.load(config_path, run.cfg.allowed_bits), table))


def run_all(run, deployed: dict[str, dict], finetuned: dict[str, dict], selection, targets=None) -> None:
    """Run every deployed network on GVSOC; add ``deployed[cid]["gvsoc"]``; fail after all ran if any layer failed.

    ``targets`` maps a network to the target it was made for (None: made for every target), as its candidate says.

    Raises:
        click.ClickException: a tool is missing (one line), or a checksum failed (every failing network named).
    """
    failures = []
    for cid, dep in deployed.items():
        records = []
        for flow in flows_of(cid, selection, (targets or {}).get(cid)):
            model_dir = run.path(dep["dir"])  # records store paths relative to the run directory
            out = model_dir / f"gvsoc-{flow}"
            try:
                result = fb_deploy.run_gvsoc(model_dir, flow, out)
                error = None
            except fb_deploy.ChecksumError as exc:
                result, error = read_json(out / "cycles.json"), str(exc)
                failures.append(f"{cid}: {error}")
            except fb_deploy.DeployError as exc:  # a missing tool, or a model the checker refuses
                raise click.ClickException(f"gvsoc: {cid} ({flow}): {exc}") from None
            records.append(_record(run, run.path(finetuned[cid]["config"]), flow, result, error, out))
            r = records[-1]
            click.echo(
                f"      {cid:<40} {flow} checksums {r['checksums_ok']}/{r['layers']}  cycles {r['cycles']:,}"
                + (f" (table {r['table_cycles']:,})" if r["table_cycles"] else "")
            )
        dep["gvsoc"] = records
    if failures:
        raise click.ClickException(f"gvsoc: {len(failures)} run(s) failed; first: {failures[0]}")


def _record(run, config_path: Path, flow: str, result: dict[str, Any], error: str | None, out: Path) -> dict:
    return {
        "flow": flow,
        "target": result["target"],
        "checksums_ok": result["checksums_ok"],
        "layers": result["network_layers"],
        "cycles": result["total_cycles"] or 0,
        "table_cycles": table_cycles(run, config_path, flow),
        "table_isa": FLOW_ISA[flow],
        "error": error,
        "cycles_json": run.rel(out / "cycles.json"),
    }


def report_lines(deployed: dict[str, dict]) -> list[str]:
    """The report's GVSOC section (empty when the run did not use GVSOC)."""
    rows = [(cid, r) for cid, d in deployed.items() for r in d.get("gvsoc", [])]
    if not rows:
        return []
    lines = [
        "",
        "## On GVSOC (DORY, 8 cores)",
        "",
        "| config | flow | target | checksums | measured cycles | table cycles | measured / table |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for cid, r in rows:
        ratio = f"{r['cycles'] / r['table_cycles']:.2f}" if r["table_cycles"] else "-"
        table = f"{r['table_cycles']:,} ({r['table_isa']})" if r["table_cycles"] else "-"
        lines.append(
            f"| `{cid}` | {r['flow']} | {r['target']} | {r['checksums_ok']}/{r['layers']} | {r['cycles']:,} | "
            f"{table} | {ratio} |"
        )
    return lines
