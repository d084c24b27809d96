"""The fb-search CLI: layer types, and one-line errors for bad input."""

import json

from click.testing import CliRunner

from fb_schema import NetConfig
from fb_schema.topologies import digitsnet
from fb_search._cli import main


def test_layer_types():
    result = CliRunner().invoke(main, ["layer-types"])
    assert result.exit_code == 0
    rows = [line.split("\t") for line in result.output.splitlines()]
    assert [r[1] for r in rows] == [layer.layer_type.key for layer in digitsnet().layers]
    result = CliRunner().invoke(main, ["layer-types", "--network", "mobilenetv1", "--width", "0.25"])
    assert result.exit_code == 0 and len(result.output.splitlines()) == 29


def _one_line_error(result, needle):
    assert result.exit_code != 0 and result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:") and needle in lines[0], result.output


def test_unknown_network():
    _one_line_error(CliRunner().invoke(main, ["layer-types", "--network", "resnet"]), "unknown network 'resnet'")


def test_bad_config_files(tmp_path, golden):
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    bad = NetConfig.homogeneous(digitsnet(), 8, 8).to_json()
    bad["layers"][2]["b_wt"] = 3
    (tmp_path / "bad.json").write_text(json.dumps(bad))
    result = CliRunner().invoke(main, ["eval", "--config", str(tmp_path / "bad.json"), "--ckpt", str(ckpt)])
    _one_line_error(result, "b_wt: a bit width in [2, 4, 8], got 3")
    ok = tmp_path / "ok.json"
    NetConfig.homogeneous(digitsnet(), 8, 8).save(ok)
    result = CliRunner().invoke(main, ["eval", "--config", str(ok), "--ckpt", str(ckpt)])
    _one_line_error(result, "not a checkpoint directory")
    result = CliRunner().invoke(main, ["layer-types", "--network", "digitsnet", "--width", "0.5"])
    assert result.exit_code == 2 and "does not take width" in result.output


def test_config_of_another_model(untrained_ckpt, tmp_path):
    cfg = tmp_path / "tiny.json"
    from fb_schema.topologies import tinynet

    NetConfig.homogeneous(tinynet(), 8, 8).save(cfg)
    result = CliRunner().invoke(main, ["eval", "--config", str(cfg), "--ckpt", untrained_ckpt])
    _one_line_error(result, "NetConfig of 'tinynet': network does not match the model 'digitsnet'")


def test_export_onnx_and_dry_run(untrained_ckpt, tmp_path):
    ort = __import__("pytest").importorskip("onnxruntime")
    out = tmp_path / "float.onnx"
    result = CliRunner().invoke(main, ["export-onnx", "--ckpt", untrained_ckpt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert sess.get_outputs()[0].shape[-1] == 10
    result = CliRunner().invoke(main, ["search", "--float-ckpt", untrained_ckpt, "--dry-run", "--mu", "0.1"])
    assert result.exit_code == 0 and "first batch (32, 16, 16, 1)" in result.output and "mu [0.1]" in result.output
