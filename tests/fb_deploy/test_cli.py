"""The fb-deploy command line: integerize, export, check, verify; bad input is one line, no traceback."""

from __future__ import annotations

import json

from click.testing import CliRunner
from conftest import GOLDEN, ROOT

from fb_deploy._cli import main

REJECTED = ROOT / "tests" / "fixtures" / "dory" / "rejected"


def test_integerize_export_check_verify(tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["integerize", str(GOLDEN), "-o", str(tmp_path / "int.json")])
    assert res.exit_code == 0, res.output
    assert "requant int32" in res.output and "|acc| <= 293760" in res.output
    res = runner.invoke(main, ["export", str(tmp_path / "int.json"), "-o", str(tmp_path / "model")])
    assert res.exit_code == 0, res.output
    assert "RequantPooling3" in res.output and "L2" in res.output
    res = runner.invoke(main, ["check", str(tmp_path / "model" / "model.onnx")])
    assert res.exit_code == 0 and "0 error(s)" in res.output
    res = runner.invoke(main, ["verify", str(tmp_path / "model"), "--artifact", str(GOLDEN)])
    assert res.exit_code == 0 and "layer-local agreement" in res.output and "conv0" in res.output
    res = runner.invoke(main, ["verify", str(tmp_path / "model"), "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["ok"] and report["golden_layers_equal"] == 5 and report["random_equal"]


def test_check_fails_on_rejected_model():
    res = CliRunner().invoke(main, ["check", str(REJECTED / "t_res_noaddbits")])
    assert res.exit_code == 1
    assert "error: [residual-add-attributes] Add -> 31" in res.output


def test_bad_input_is_one_line(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": "freebits/quantized-network/v1"}')
    res = CliRunner().invoke(main, ["export", str(bad), "-o", str(tmp_path / "out")])
    assert res.exit_code == 1
    assert res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1
    assert "bad.npz" in res.output  # names the file that is missing
    res = CliRunner().invoke(main, ["verify", str(tmp_path)])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
