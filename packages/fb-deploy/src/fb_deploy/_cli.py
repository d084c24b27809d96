"""The ``fb-deploy`` command line: integerize, export, check, verify (and the DORY/GVSOC helpers)."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path

import click
import onnx

from fb_deploy._adapters import run_dory
from fb_deploy._checker import check_model, errors
from fb_deploy._cli_errors import Group
from fb_deploy._dory_graph import load_model_dir, parse
from fb_deploy._errors import DeployError
from fb_deploy._export import DEFAULT_CODE_RESERVED, export_dory
from fb_deploy._gvsoc import FLOWS, GvsocTools, run_gvsoc
from fb_deploy._gvsoc_log import ChecksumError
from fb_deploy._integer_network import IntegerNetwork, is_integer_network
from fb_deploy._integerize import integerize
from fb_deploy._memory import L2_BYTES, l2_report
from fb_deploy._qdq import export_qdq
from fb_deploy._single_layer import single_layer_network
from fb_deploy._verify import MAX_STEPS, verify
from fb_schema import LayerType, QuantizedNetwork, SchemaError, error_line, write_json


def _friendly(fn):
    """Turn expected failures into one-line click errors (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (DeployError, SchemaError, FileNotFoundError, json.JSONDecodeError) as exc:
            raise click.ClickException(error_line(exc)) from None

    return wrapper


def _requant_bits(value: str) -> int | str:
    return value if value == "auto" else int(value)


REQUANT = click.option(
    "--requant-bits",
    type=click.Choice(["auto", "32", "64"]),
    default="auto",
    show_default=True,
    help="Width of acc*mul+add (DORY BNRelu_bits); auto = 32 where provably safe.",
)


def _load_network(path: Path, requant_bits: str, max_shift: int | None = None) -> IntegerNetwork:
    if is_integer_network(path):
        return IntegerNetwork.load(path)
    return integerize(QuantizedNetwork.load(path), _requant_bits(requant_bits), max_shift)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="fb-deploy", prog_name="fb-deploy")
def main() -> None:
    """Free Bits deployment: integer networks for DORY on PULP microcontrollers."""


@main.command("integerize")
@click.argument("artifact", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True, help="INT.json")
@REQUANT
@click.option(
    "--max-shift", type=click.IntRange(0, 40), default=None, help="Largest shift d [24 at 32 bits, 30 at 64]."
)
@_friendly
def integerize_cmd(artifact: Path, output: Path, requant_bits: str, max_shift: int | None) -> None:
    """Integerize a QuantizedNetwork ARTIFACT (JSON + .npz) into an integer network (OUTPUT + .npz)."""
    net = integerize(QuantizedNetwork.load(artifact), _requant_bits(requant_bits), max_shift)
    output.parent.mkdir(parents=True, exist_ok=True)
    net.save(output)
    click.echo(f"{net.network}: {len(net.layers)} layers, requant int{net.requant_bits} -> {output}")
    for layer in net.layers:
        bounds = ", ".join(f"|{k}| <= {v}" for k, v in layer.bounds.items())
        shift = f"shift {layer.shift}" if layer.shift is not None else "add rq" if layer.add_rq else "int32 out"
        bits = "/".join(map(str, layer.in_bits))
        click.echo(
            f"  {layer.name:<16} {layer.op:<17} in {bits:>3} w {layer.w_bits or '-'} out {layer.out_bits:>2}"
            f"  {shift:<9} {bounds}"
        )


@main.command("export")
@click.argument("network", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Model dir.")
@REQUANT
@click.option("--code-reserved", type=int, default=DEFAULT_CODE_RESERVED, show_default=True, help="L2 bytes for code.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["dory", "qdq"]),
    default="dory",
    show_default=True,
    help="dory: DORY model dir; qdq: standard QuantizeLinear/DequantizeLinear ONNX (OUTPUT/model_qdq.onnx).",
)
@_friendly
def export_cmd(network: Path, output: Path, requant_bits: str, code_reserved: int, fmt: str) -> None:
    """Export NETWORK (a QuantizedNetwork or an integer network JSON) as a DORY model directory or QDQ ONNX."""
    net = _load_network(network, requant_bits)
    if fmt == "qdq":
        output.mkdir(parents=True, exist_ok=True)
        agreement = export_qdq(net, output / "model_qdq.onnx")
        click.echo(f"wrote {output / 'model_qdq.onnx'} (opset 13, sub-byte widths in metadata_props)")
        if agreement:
            a = agreement
            click.echo(
                f"  ONNX Runtime vs integer reference ({a['samples']} samples): max {a['max_abs_lsb']:g} LSB "
                f"({100 * a['max_rel']:.2f}% of max |logit|), argmax agreement {a['argmax_agreement']:.0%}"
            )
        return
    out = export_dory(net, output, code_reserved=code_reserved)
    findings = check_model(out)
    click.echo(f"wrote {out}: model.onnx, config.json, input.txt, out_layer0..{len(net.layers) - 1}.txt")
    for f in findings:
        click.echo(f"  {f}")
    _print_memory(out)
    if errors(findings):
        raise click.ClickException(f"{out}: the exported model breaks DORY rules ({errors(findings)[0].rule})")


def _print_memory(model: Path) -> None:
    onnx_path, config, _ = load_model_dir(model)
    graph = parse(onnx.load(onnx_path), config)
    budget = L2_BYTES - int(config.get("code reserved space", 0))
    report = l2_report(graph)
    click.echo(f"L2 estimate (budget {budget} B = {L2_BYTES} - code reserved):")
    for mem in report:
        click.echo(f"  {mem.name:<26} act {mem.activations:>8} B  weights {mem.weights:>8} B  {mem.placement}")


@main.command("check")
@click.argument("model", type=click.Path(exists=True, path_type=Path))
@click.option("--memory/--no-memory", default=False, help="Also print the per-layer L2 estimate.")
@_friendly
def check_cmd(model: Path, memory: bool) -> None:
    """Check MODEL (.onnx, its directory or config.json) against DORY's QuantLab-frontend rules."""
    findings = check_model(model)
    for f in findings:
        click.echo(str(f))
    n_err = len(errors(findings))
    click.echo(f"{model}: {n_err} error(s), {len(findings) - n_err} warning(s)")
    if memory and not n_err:
        _print_memory(model)
    if n_err:
        sys.exit(1)


@main.command("verify")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--random", "n_random", type=click.IntRange(0), default=8, show_default=True, help="Random inputs.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.option(
    "--artifact",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The QuantizedNetwork it came from: also compare every layer with the fake-quant model.",
)
@click.option(
    "--max-steps",
    type=click.IntRange(0),
    default=MAX_STEPS,
    show_default=True,
    help="With --artifact: fail when a layer departs from the fake-quant one by more output steps.",
)
@_friendly
def verify_cmd(model_dir: Path, n_random: int, seed: int, as_json: bool, artifact: Path | None, max_steps: int) -> None:
    """Run MODEL_DIR's ONNX Runtime twin against the goldens, the integer reference and the fake-quant logits."""
    report = verify(model_dir, n_random=n_random, seed=seed, artifact=artifact, max_steps=max_steps)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=2))
    else:
        click.echo(f"{model_dir}: {report.layers} DORY layers")
        click.echo(f"  goldens: {report.golden_layers_equal}/{report.layers} layers bit-exact")
        for m in report.golden_mismatches:
            click.echo(f"    mismatch {m}")
        for c in report.checksums:
            if c["golden"] != c["twin"]:
                click.echo(
                    f"    {c['layer']}: checksum of the goldens {c['golden']}, of the twin (DORY's reading) {c['twin']}"
                )
        for e in report.check_errors:
            click.echo(f"  {e}")
        if report.random_equal is not None:
            state = "bit-exact" if report.random_equal else f"MISMATCH in {report.random_mismatches}"
            click.echo(f"  twin vs integer reference on {report.random_inputs} random inputs: {state}")
        if report.fakequant:
            fq = report.fakequant
            click.echo(
                f"  integer vs fake-quant logits ({fq['samples']} samples): max |err| {fq['max_abs_error']:.4g} "
                f"({100 * fq['max_abs_error_rel']:.2f}% of max |logit|), argmax agreement {fq['argmax_agreement']:.0%}"
            )
        if report.layer_agreement:
            click.echo("  layer-local agreement with the fake-quant model (same inputs):")
            for row in report.layer_agreement:
                click.echo(
                    f"    {row['layer']:<16} {row['mismatches']:>7} of {row['values']:>8} differ"
                    + (f" (max {row['max_steps']} step)" if row["mismatches"] else "")
                )
            for d in report.departures:
                click.echo(f"    DEPARTS from the fake-quant model by more than {max_steps} step: {d}")
    if not report.ok:
        sys.exit(1)


@main.command("layer")
@click.argument("key")
@click.option("--b-in", type=click.Choice(["2", "4", "8"]), required=True, help="Input bits.")
@click.option("--b-wt", type=click.Choice(["2", "4", "8"]), default=None, help="Weight bits (not for add/avgpool).")
@click.option("--b-out", type=click.Choice(["2", "4", "8"]), default="8", show_default=True, help="Output bits.")
@click.option("-o", "--output", type=click.Path(file_okay=False, path_type=Path), required=True, help="Model dir.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--code-reserved", type=int, default=DEFAULT_CODE_RESERVED, show_default=True, help="L2 bytes for code.")
@_friendly
def layer_cmd(key: str, b_in: str, b_wt: str | None, b_out: str, output: Path, seed: int, code_reserved: int) -> None:
    """Write a one-layer DORY model dir for layer type KEY (random weights), for latency profiling."""
    try:
        lt = LayerType.from_key(key)
    except ValueError as exc:
        raise click.BadParameter(f"not a layer-type key ({exc})", param_hint="KEY") from None
    if lt.configurable and b_wt is None:
        raise click.UsageError(f"--b-wt is required for {lt.op}")
    net = single_layer_network(lt, int(b_in), int(b_wt) if lt.configurable else None, int(b_out), seed)
    out = export_dory(net, output, code_reserved=code_reserved)
    graph = parse(onnx.load(out / "model.onnx"), json.loads((out / "config.json").read_text()))
    profiled = graph.layers[-1]
    info = {
        "layer_type": key,
        "b_in": int(b_in),
        "b_wt": int(b_wt) if lt.configurable else None,
        "b_out": int(b_out),
        "padded_in_ch": net.layers[-1].layer_type.in_ch,
        "dory_layer": profiled.name,
        "dory_layer_index": profiled.index,
    }
    write_json(out / "layer.json", info)
    findings = errors(check_model(out))
    if findings:
        raise click.ClickException(f"{out}: {findings[0]}")
    click.echo(f"wrote {out}: {profiled.name} ({lt.op}, in {b_in} w {b_wt or '-'} out {b_out})")


DORY_DIR = click.option("--dory-dir", envvar="DORY_HOME", help="DORY checkout (pulp-platform/dory) [env DORY_HOME].")
DORY_PYTHON = click.option(
    "--dory-python", envvar="DORY_PYTHON", help="Python for DORY (numpy<1.24, onnx, mako, ortools) [env DORY_PYTHON]."
)
PULP_SDK = click.option(
    "--pulp-sdk", envvar="PULP_SDK_HOME", help="pulp-sdk checkout (configs/pulp-open*.sh) [env PULP_SDK_HOME]."
)


@main.command("dory")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@DORY_DIR
@click.option("--isa", type=click.Choice(["xpulpv2", "xpulpnn1", "xpulpnn2"]), default="xpulpv2", show_default=True)
@click.option("--app-dir", type=click.Path(file_okay=False, path_type=Path), help="Default: MODEL_DIR/app.")
@DORY_PYTHON
@click.option("--verbose-level", type=click.Choice(["None", "Perf_final", "Check_all+Perf_final", "Last+Perf_final"]))
@_friendly
def dory_cmd(model_dir, dory_dir, isa, app_dir, dory_python, verbose_level) -> None:
    """Generate the PULP/GVSOC application of MODEL_DIR with the user's DORY (mixed-sw or mixed-hw kernels)."""
    result = run_dory(model_dir, dory_dir, isa, app_dir, dory_python, verbose_level)
    click.echo(f"DORY generated {result.app_dir} ({len(result.layers)} layers: {', '.join(result.layers)})")
    click.echo(f"  log: {result.log}")


@main.command("gvsoc")
@click.argument("model_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--flow", type=click.Choice(list(FLOWS)), default="mixed-sw", show_default=True,
              help="DORY kernels: mixed-sw (XpulpV2, pulp-open) or mixed-hw (XpulpNN, pulp-open-nn).")  # fmt: skip
@click.option("-o", "--out-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Application, logs and cycles.json [default: MODEL_DIR/gvsoc-FLOW].")  # fmt: skip
@DORY_DIR
@DORY_PYTHON
@PULP_SDK
@click.option(
    "--check/--no-check", default=True, show_default=True, help="Refuse models the DORY-rule checker rejects."
)
@click.option("--timeout", type=float, default=1800, show_default=True, help="Seconds for the build and the run.")
@_friendly
def gvsoc_cmd(model_dir, flow, out_dir, dory_dir, dory_python, pulp_sdk, check, timeout) -> None:
    """Generate, build and run MODEL_DIR on GVSOC; check every layer's checksum; write cycles.json.

    Fails (exit 1, one line) naming the layer and both checksums when a layer computes a wrong output, or when
    fewer layers report than the network has.
    """
    out_dir = out_dir or model_dir / f"gvsoc-{flow}"
    tools = GvsocTools(dory_dir, dory_python, pulp_sdk)
    try:
        result = run_gvsoc(model_dir, flow, out_dir, tools, check=check, timeout=timeout)
    except ChecksumError:
        _print_layers(json.loads((out_dir / "cycles.json").read_text()))
        raise
    _print_layers(result)
    click.echo(f"{result['checksums_ok']}/{result['network_layers']} checksums OK -> {out_dir / 'cycles.json'}")


def _print_layers(result: dict) -> None:
    for layer in result["layers"]:
        check = layer["checksum"] if layer["checksum"] != "failed" else (
            f"FAILED (expected {layer['expected_checksum']}, computed {layer['computed_checksum']})")  # fmt: skip
        click.echo(f"  {layer['index']:>3} {layer['name']:<28} {layer['cycles'] or 0:>10} cycles  {check}")
    click.echo(
        f"total {result['total_cycles']} cycles on {result['target']} ({result['flow']}, {result['cores']} cores)"
    )
