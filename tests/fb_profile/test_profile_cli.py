"""The fb-profile command line: layer-types, sweep, plot, and its one-line errors."""

from __future__ import annotations

import json

from click.testing import CliRunner

from fb_profile._cli import main
from fb_schema import LatencyTable


def _run(*args):
    return CliRunner().invoke(main, list(args))


def test_layer_types_of_builtin_network():
    r = _run("layer-types", "--network", "mobilenetv1", "--width", "0.75", "--resolution", "224")
    assert r.exit_code == 0, r.output
    assert "  5 x conv2d_14x14x384_o384_k1x1_s1x1_p0.0.0.0_g1" in r.output
    assert r.output.strip().endswith("21 layer types, 29 layers, 325,400,448 MACs")
    r = _run("layer-types", "--network", "digitsnet", "--json")
    assert len(json.loads(r.output)) == 10


def test_sweep_and_plot(tmp_path):
    out = tmp_path / "tables" / "digits_xpulpnn1.json"
    r = _run("sweep", "--network", "digitsnet", "--target", "pulp-model:xpulpnn1", "-o", str(out), "--cache-dir",
             str(tmp_path / "cache"), "--no-progress")  # fmt: skip
    assert r.exit_code == 0, r.output
    table = LatencyTable.load(out)
    assert table.target.isa == "xpulpnn1" and len(table.entries) == 8 * 9 + 2 * 3
    other = tmp_path / "digits_xpulpv2.json"
    assert _run("sweep", "--network", "digitsnet", "--target", "pulp-model:xpulpv2", "-o", str(other),
                "--no-cache", "--no-progress", "--bits", "4,8").exit_code == 0  # fmt: skip
    assert LatencyTable.load(other).target.allowed_bits == (4, 8)
    png = tmp_path / "fig1.png"
    r = _run("plot", str(out), str(other), "-o", str(png))
    assert r.exit_code == 0, r.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _one_line_error(r, text):
    assert r.exit_code != 0
    assert "Traceback" not in r.output
    lines = [line for line in r.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and text in lines[0], r.output


def test_cli_errors_are_one_line(tmp_path):
    out = str(tmp_path / "t.json")
    base = ("sweep", "--network", "tinynet", "-o", out, "--no-cache", "--no-progress")
    _one_line_error(_run(*base, "--target", "pulp-model:xpulpv3"), "unknown ISA 'xpulpv3'")
    _one_line_error(_run(*base, "--bits", "2,3,8"), "bit width(s) 3 not supported")
    _one_line_error(_run(*base, "--target", "xpulpv2"), "expected <backend>:<arg>")
    _one_line_error(_run("sweep", "-o", out), "give exactly one of --network, --config or --onnx")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    _one_line_error(_run("plot", str(bad)), "bad.json")
    _one_line_error(_run("layer-types", "--onnx", str(tmp_path / "missing.onnx")), "missing.onnx")
