"""``fb-heuristic``: apply free bits, total latency, select a configuration, diff two configurations."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from fb_heuristic._cli_errors import Group
from fb_heuristic._diff import diff, format_diff
from fb_heuristic._free_bits import deployable_latency, free_bits, network_latency
from fb_heuristic._knapsack import knapsack
from fb_heuristic._select import check_same_network, pareto_front, select
from fb_schema import LatencyTable, MissingLatencyError, NetConfig, SchemaError

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


def _load(kind, path: Path, *args):
    try:
        return kind.load(path, *args)
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None


def _bits(text: str) -> tuple[int, ...]:
    try:
        bits = tuple(sorted({int(b) for b in text.split(",")}))
    except ValueError:
        raise click.BadParameter(
            f"a comma-separated list of bit widths like 2,4,8, got {text!r}", param_hint="'--allowed'"
        ) from None
    if not bits or any(b < 1 or b > 32 for b in bits):
        raise click.BadParameter(f"bit widths in 1..32, got {text!r}", param_hint="'--allowed'")
    return bits


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="fb-heuristic", prog_name="fb-heuristic")
def main() -> None:
    """Free-bits heuristic and configuration selection (latency tables from fb-profile)."""


@main.command()
@click.argument("config", type=_FILE)
@click.argument("table", type=_FILE)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--allowed", default=None, help="Bit widths the result may use, e.g. 2,4,8 (default: the table's).")
@click.option("--skip-missing", is_flag=True, help="Keep layers whose latency entries are missing unchanged.")
@click.option("--unavailable", is_flag=True,
              help="Read pairs missing from TABLE as ones the target cannot run: never move to one, move a layer "
                   "off one to the fastest available more precise pair.")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="Print the per-layer diff as JSON.")
def apply(config: Path, table: Path, output: Path, allowed, skip_missing: bool, unavailable: bool,
          as_json: bool) -> None:  # fmt: skip
    """Raise each layer of CONFIG to its fastest at-least-as-precise pair in TABLE; write OUTPUT."""
    allowed_bits = _bits(allowed) if allowed else None
    lt = _load(LatencyTable, table)
    # The input may use any width the table knows; --allowed restricts only where layers may move.
    net = _load(NetConfig, config, tuple(sorted(set(lt.target.allowed_bits) | set(allowed_bits or ()))))
    if skip_missing and unavailable:
        raise click.UsageError("give at most one of --skip-missing and --unavailable")
    mode = "unavailable" if unavailable else "keep" if skip_missing else "error"
    try:
        result = free_bits(net, lt, allowed_bits, mode)
    except MissingLatencyError as exc:
        raise click.ClickException(f"{exc} (use --skip-missing or --unavailable)") from None
    result.save(output)
    stuck = result.provenance.get("not_deployable", [])
    if stuck:
        click.echo(f"not deployable on {lt.target.name}: no available pair for {', '.join(stuck)}", err=True)
    both = deployable_latency(net, lt) is not None and not stuck
    rows = diff(net, result, lt if both else None)  # latencies only where both configs can run
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        click.echo(format_diff(rows))
        click.echo(f"wrote {output} ({sum(r.changed for r in rows)} layers changed)")


@main.command()
@click.argument("config", type=_FILE)
@click.argument("table", type=_FILE)
@click.option("--json", "as_json", is_flag=True)
def latency(config: Path, table: Path, as_json: bool) -> None:
    """Total latency of CONFIG on TABLE's target (sum over layers)."""
    lt = _load(LatencyTable, table)
    net = _load(NetConfig, config, lt.target.allowed_bits)
    try:
        cycles = network_latency(net, lt)
    except MissingLatencyError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps({"config": str(config), "target": lt.target.name, "latency": cycles}))
    else:
        click.echo(f"{config}: {cycles:,} {lt.target.unit} on {lt.target.name}")


@main.command(name="select")
@click.argument("configs", type=_FILE, nargs=-1, required=True)
@click.option("--table", type=_FILE, required=True)
@click.option("--baseline", type=_FILE, required=True, help="The reference config (e.g. 8b/8b).")
@click.option("--latency-target", type=click.IntRange(min=1), default=None, help="Cycles.")
@click.option("--max-accuracy-drop", type=click.FloatRange(min=0), default=None, help="Percentage points.")
@click.option("--json", "as_json", is_flag=True)
def select_cmd(configs, table, baseline, latency_target, max_accuracy_drop, as_json) -> None:
    """Pick among CONFIGS by a latency target or an accuracy margin to the baseline; print the Pareto front."""
    if (latency_target is None) == (max_accuracy_drop is None):
        raise click.UsageError("give exactly one of --latency-target or --max-accuracy-drop")
    lt = _load(LatencyTable, table)
    nets = [_load(NetConfig, p, lt.target.allowed_bits) for p in configs]
    base = _load(NetConfig, baseline, lt.target.allowed_bits)
    names = {id(n): str(p) for n, p in zip([*nets, base], [*configs, baseline])}
    try:
        for net, path in zip(nets, configs):
            check_same_network(net, base, str(path))
        chosen = select(nets, lt, base, latency_target, max_accuracy_drop)
        front = pareto_front([base, *nets], lt)
    except (ValueError, MissingLatencyError) as exc:
        raise click.ClickException(str(exc)) from None
    base_lat = network_latency(base, lt)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "selected": names[id(chosen.config)],
                    "latency": chosen.latency,
                    "accuracy": chosen.accuracy,
                    "baseline_latency": base_lat,
                    "front": [
                        {"config": names[id(s.config)], "latency": s.latency, "accuracy": s.accuracy} for s in front
                    ],
                },
                indent=2,
            )
        )
        return
    click.echo("Pareto front (latency ↑, accuracy ↑):")
    for s in front:
        mark = "  <= selected" if s is chosen or s.config is chosen.config else ""
        click.echo(
            f"  {s.latency:>12,} cycles ({s.latency / base_lat - 1:+7.1%})  {s.accuracy:7.2%}  "
            f"{names[id(s.config)]}{mark}"
        )
    click.echo(f"selected: {names[id(chosen.config)]}  {chosen.latency:,} cycles  {chosen.accuracy:.2%}")


@main.command(name="diff")
@click.argument("a", type=_FILE)
@click.argument("b", type=_FILE)
@click.option("--table", type=_FILE, default=None)
@click.option("--changed", is_flag=True, help="Show only layers that differ.")
@click.option("--json", "as_json", is_flag=True)
def diff_cmd(a: Path, b: Path, table, changed: bool, as_json: bool) -> None:
    """Per-layer precision (and latency) differences between configs A and B."""
    lt = _load(LatencyTable, table) if table else None
    bits = lt.target.allowed_bits if lt else (2, 4, 8)
    try:
        rows = diff(_load(NetConfig, a, bits), _load(NetConfig, b, bits), lt)
    except (ValueError, MissingLatencyError) as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
    else:
        click.echo(format_diff(rows, only_changed=changed))


@main.command(name="knapsack")
@click.argument("config", type=_FILE)
@click.argument("table", type=_FILE)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.option("--budget", type=click.IntRange(min=1), default=None, help="Latency budget in cycles.")
@click.option(
    "--budget-fraction",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Budget as a fraction of CONFIG's own latency.",
)
@click.option("--bins", type=click.IntRange(min=1), default=4096, show_default=True)
@click.option("--exact", is_flag=True, help="1-cycle bins (exact; slower for large budgets).")
@click.option("--locked", is_flag=True, help="Only pairs with b_in == b_wt for searchable inputs.")
@click.option("--json", "as_json", is_flag=True)
def knapsack_cmd(config, table, output, budget, budget_fraction, bins, exact, locked, as_json) -> None:
    """Least total sensitivity (CONFIG's metrics.sensitivity) within a latency budget on TABLE's target."""
    if (budget is None) == (budget_fraction is None):
        raise click.UsageError("give exactly one of --budget or --budget-fraction")
    lt = _load(LatencyTable, table)
    net = _load(NetConfig, config, lt.target.allowed_bits)
    if "sensitivity" not in net.metrics:
        raise click.ClickException(f"{config}: metrics.sensitivity: per-layer sensitivities are required")
    try:
        cycles = budget or int(budget_fraction * network_latency(net, lt))
        result = knapsack(net, lt, cycles, None if exact else bins, locked=locked)
    except (ValueError, KeyError, MissingLatencyError) as exc:
        raise click.ClickException(str(exc).strip("'\"")) from None
    result.config.save(output)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "budget": cycles,
                    "latency": result.latency,
                    "cost": result.cost,
                    "bin_cycles": result.bin_cycles,
                    "output": str(output),
                }
            )
        )
    else:
        click.echo(format_diff(diff(net, result.config, lt), only_changed=True))
        click.echo(
            f"wrote {output}: {result.latency:,} ≤ {cycles:,} cycles, sensitivity {result.cost:.4g} "
            f"(bins of {result.bin_cycles} cycles)"
        )


if __name__ == "__main__":
    sys.exit(main())
