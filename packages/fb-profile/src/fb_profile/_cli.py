"""``fb-profile``: layer types, latency sweeps, Fig. 1, table comparison and model calibration."""

from __future__ import annotations

import json
from pathlib import Path

import click

from fb_profile._backends import make_backend
from fb_profile._cli_errors import Group
from fb_profile._constants import DEFAULT_FIT, FREE, TOOLCHAINS, builtin_constants, save_constants
from fb_profile._layers import builtin_network, layer_counts, layer_types_of, network_layers
from fb_profile._plot import plot_throughput
from fb_profile._sweep import SweepPlan, sweep
from fb_schema import LatencyTable, SchemaError, error_line
from fb_schema.topologies import BUILTIN


def _bits(text: str) -> tuple[int, ...]:
    try:
        bits = tuple(sorted({int(b) for b in text.split(",") if b.strip()}))
    except ValueError:
        raise click.BadParameter(f"expected comma-separated bit widths such as 2,4,8, got {text!r}") from None
    if not bits:
        raise click.BadParameter("expected at least one bit width")
    return bits


def _pairs(text: str | None) -> tuple[tuple[int, int], ...] | None:
    if not text:
        return None
    try:
        return tuple((int(a), int(w)) for a, w in (p.split("/") for p in text.split(",") if p.strip()))
    except ValueError:
        raise click.BadParameter(f"--pairs: expected b_in/b_wt pairs such as 2/2,8/8, got {text!r}") from None


def _source(network, width, resolution, config, onnx_path):
    given = [x for x in (network, config, onnx_path) if x is not None]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --network, --config or --onnx")
    if network is None and (width is not None or resolution is not None):
        raise click.UsageError("--width/--resolution only apply to --network")
    try:
        if network is not None:
            return builtin_network(network, width, resolution)
        return config if config is not None else onnx_path
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


def network_options(f):
    """--network/--width/--resolution | --config | --onnx."""
    f = click.option("--onnx", "onnx_path", type=click.Path(dir_okay=False), help="An ONNX model (NCHW).")(f)
    f = click.option("--config", type=click.Path(dir_okay=False), help="A NetConfig JSON file.")(f)
    f = click.option("--resolution", type=int, help="Input resolution of the built-in network.")(f)
    f = click.option("--width", type=float, help="Width multiplier of the built-in network.")(f)
    help_ = f"A built-in topology ({', '.join(sorted(BUILTIN))}) or a topology file (freebits/topology/v1)."
    return click.option("--network", help=help_)(f)


def _fail(exc: Exception) -> click.ClickException:
    return click.ClickException(error_line(exc))


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="fb-profile", prog_name="fb-profile")
def main() -> None:
    """Latency profiling for Free Bits: per-layer-type latency tables on PULP targets."""


@main.command("layer-types")
@network_options
@click.option("--json", "as_json", is_flag=True, help="Print {key: LayerType} as JSON.")
def layer_types_cmd(network, width, resolution, config, onnx_path, as_json):
    """List the unique layer types of a network (with their MACs and how many layers share them)."""
    source = _source(network, width, resolution, config, onnx_path)
    try:
        types = layer_types_of(source)
        counts = layer_counts(source)
    except (ValueError, SchemaError) as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps({k: lt.to_json() for k, lt in types.items()}, indent=1))
        return
    for key, lt in types.items():
        click.echo(f"{counts[key]:3d} x {key:58s} {lt.macs:>12,d} MAC")
    total = sum(lt.macs * counts[k] for k, lt in types.items() if lt.configurable)
    click.echo(f"{len(types)} layer types, {len(network_layers(source))} layers, {total:,d} MACs")


@main.command("sweep")
@network_options
@click.option("--target", default="pulp-model:xpulpv2", show_default=True,
              help="pulp-model:{xpulpv2,xpulpnn1,xpulpnn2}, gvsoc:{xpulpv2,xpulpnn1} or table:FILE.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), required=True, help="Latency table JSON to write.")
@click.option("--bits", default="2,4,8", show_default=True, help="Allowed bit widths of b_in and b_wt.")
@click.option("--b-out", default=8, show_default=True, help="Output bits of every layer.")
@click.option("--jobs", default=1, show_default=True, help="Worker processes.")
@click.option("--cache-dir", type=click.Path(file_okay=False), help="Point cache [default: $FB_PROFILE_CACHE or "
              "~/.cache/fb-profile].")  # fmt: skip
@click.option("--no-cache", is_flag=True, help="Neither read nor write the point cache.")
@click.option("--constants", type=click.Path(dir_okay=False), help="Calibrated pulp-model constants (JSON).")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--dory-dir", help="gvsoc: DORY checkout (pulp-platform/dory) [env DORY_HOME].")
@click.option("--dory-python", help="gvsoc: Python for DORY (numpy<1.24, onnx, mako, ortools) [env DORY_PYTHON].")
@click.option("--pulp-sdk", help="gvsoc: pulp-sdk checkout (configs/pulp-open*.sh) [env PULP_SDK_HOME].")
@click.option("--fb-deploy", help="gvsoc: the fb-deploy executable [env FB_DEPLOY, default fb-deploy on PATH].")
@click.option("--work-dir", help="gvsoc: keep each point's model, app and log here.")
@click.option("--timeout", type=float, help="gvsoc: seconds per tool run; a simulation past it is a hang "
              "[default 3600].")  # fmt: skip
@click.option("--allow-failed", is_flag=True, help="Exit 0 even when points failed (they are listed in 'failed').")
@click.option("--pairs", help="Measure only these pairs of configurable layers now, e.g. 2/2,4/4,8/8.")
@click.option("--types", "only_types", help="Measure only these layer-type keys now (comma-separated).")
@click.option("--cached-only", is_flag=True, help="Measure nothing: build the table from the point cache.")
@click.option("--retry-failed", is_flag=True, help="Re-measure points whose failure is cached.")
def sweep_cmd(network, width, resolution, config, onnx_path, target, output, bits, b_out, jobs, cache_dir, no_cache,
              constants, no_progress, allow_failed, pairs, only_types, cached_only, retry_failed, **tools):  # fmt: skip
    """Profile every layer type at every allowed (b_in, b_wt) pair and write the latency table."""
    table_import = target.startswith("table:") and not any((network, config, onnx_path))
    source = None if table_import else _source(network, width, resolution, config, onnx_path)
    options = {k: v for k, v in tools.items() if v is not None}
    if options and not target.startswith("gvsoc:"):
        raise click.UsageError(f"--{next(iter(options)).replace('_', '-')} only applies to gvsoc targets")
    if ":" not in target or target.startswith(":"):
        raise click.UsageError(f"--target: expected <backend>:<arg> such as pulp-model:xpulpv2, got {target!r}")
    plan = SweepPlan(_pairs(pairs), tuple(t for t in only_types.split(",") if t) if only_types else None,
                     cached_only, retry_failed)  # fmt: skip
    try:
        table = sweep(source, target, _bits(bits), jobs, False if no_cache else cache_dir, not no_progress, b_out,
                      constants, plan, **options)  # fmt: skip
    except (ValueError, SchemaError, OSError) as exc:
        raise _fail(exc) from None
    table.save(output)
    msg = f"{output}: {len(table.entries)} entries, {len(table.layer_types)} layer types on {table.target.name}"
    click.echo(msg + (f", {len(table.failed)} FAILED (see 'failed')" if table.failed else ""))
    counts, run = table.provenance["points"], table.provenance["this_run"]
    if counts["not_measured"]:
        click.echo(f"  {counts['not_measured']} of {counts['total']} points not measured yet")
    if run["now"]:
        rate = 3600 * run["now"] / run["wall_s"] if run["wall_s"] else float("inf")
        click.echo(f"  measured {run['now']} points in {run['wall_s']:.0f} s with {run['jobs']} job(s): "
                   f"{rate:.0f} points/hour")  # fmt: skip
    for f in table.failed[:10]:
        click.echo(f"  failed {f['layer_type']} ({f['b_in']}, {f['b_wt']}): {f['error']}", err=True)
    if table.failed and not allow_failed:
        raise click.ClickException(f"{output}: {len(table.failed)} point(s) failed (pass --allow-failed to accept)")


def _load_tables(paths) -> list[LatencyTable]:
    try:
        return [LatencyTable.load(p) for p in paths]
    except SchemaError as exc:
        raise _fail(exc) from None


@main.command("plot")
@click.argument("tables", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False), default="fig1.png", show_default=True)
@click.option("--title", help="Plot title.")
def plot_cmd(tables, output, title):
    """Fig. 1: throughput (MAC/cycle) per precision pair, one candlestick group per table (ISA)."""
    plot_throughput(_load_tables(tables), output, title)
    click.echo(f"wrote {output}")


@main.command("compare")
@click.argument("tables", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False), help="Scatter of the others against the first.")
@click.option("--fig1", "fig1_path", type=click.Path(dir_okay=False), help="Fig. 1 of all tables side by side.")
@click.option("--errors", is_flag=True, help="First table = measurement: error of each other table per layer type.")
@click.option("--json", "as_json", is_flag=True, help="With --errors: print the errors as JSON.")
def compare_cmd(tables, plot_path, fig1_path, errors, as_json):
    """Best pair per layer type on each table, where they differ, rank correlation (first table = reference)."""
    from fb_profile._accuracy import accuracy
    from fb_profile._compare import compare_tables, plot_against

    loaded = _load_tables(tables)
    names = [Path(t).stem for t in tables] if len({x.target.name for x in loaded}) < len(loaded) else None
    try:
        result = compare_tables(loaded, names)
        found = [accuracy(loaded[0], other) for other in loaded[1:]] if errors else []
    except ValueError as exc:
        raise _fail(exc) from None
    if as_json:
        click.echo(json.dumps([a.to_json() for a in found], indent=1))
    else:
        click.echo(result.report())
        for a in found:
            click.echo(a.report())
    if plot_path:
        plot_against(loaded[0], loaded[1:], plot_path)
        click.echo(f"wrote {plot_path}", err=as_json)
    if fig1_path:
        plot_throughput(loaded, fig1_path, "Fig. 1: " + " | ".join(t.target.name for t in loaded))
        click.echo(f"wrote {fig1_path}", err=as_json)


def _measured_table(path: str) -> LatencyTable:
    """The measured points of ``path`` in any format the ``table:`` target reads (JSON table or list, CSV)."""
    backend = make_backend(f"table:{path}")
    bits = sorted({b for _, a, w in backend.points for b in (a, w) if b is not None})
    target = backend.target(backend.b_out or 8, tuple(bits))
    return LatencyTable(target, dict(backend.layer_types), dict(backend.points))


@main.command("calibrate")
@click.option("--model", "isa", required=True, help="ISA of the pulp-model to calibrate (xpulpv2, xpulpnn1, ...).")
@click.option("--measured", required=True, type=click.Path(dir_okay=False),
              help="Measured latencies: a latency table or list (JSON) or layer_type,b_in,b_wt,latency CSV, as "
              "read by the table: target.")  # fmt: skip
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Constants file to write [default: "
              "<measured>.constants.json].")  # fmt: skip
@click.option("--free", default=",".join(DEFAULT_FIT), show_default=True,
              help=f"Constants to fit, of {', '.join(FREE)}.")  # fmt: skip
@click.option("--toolchain", "toolchain", default="pulp-gcc", show_default=True,
              type=click.Choice(TOOLCHAINS), help="Compiler profile of the model to start from.")  # fmt: skip
def calibrate_cmd(isa, measured, output, free, toolchain):
    """Fit the model's free constants to a measured table; load the result with `sweep --constants`."""
    from fb_profile._calibrate import calibrate

    try:
        table = _measured_table(measured)
        initial = builtin_constants(isa, toolchain)
        result = calibrate(initial, table, [f.strip() for f in free.split(",") if f.strip()])
    except ValueError as exc:
        raise _fail(exc) from None
    click.echo(result.report())
    output = output or str(Path(measured).with_suffix("")) + ".constants.json"
    save_constants(result.constants, output, {"fit": {"measured": str(measured), "points": result.points,
                                                     "before": result.before, "after": result.after}})  # fmt: skip
    spec = isa if toolchain == "pulp-gcc" else f"{isa}@{toolchain}"
    click.echo(f"wrote {output} (use: fb-profile sweep ... --target pulp-model:{spec} --constants {output})")


if __name__ == "__main__":  # pragma: no cover
    main()
