"""Regression tests of the pipeline's checks: --dry-run checks values, failing stages say so, stage records."""

import json
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

import freebits  # noqa: E402
from fbpipe import pipeline  # noqa: E402
from fbpipe.config import load_config  # noqa: E402


def _write(tmp_path, body: str) -> Path:
    path = tmp_path / "cfg.py"
    path.write_text(f"import math\n\n\ndef get_config():\n    return {body}\n")
    return path


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ('"targets": ("pulp-model:riscv",)', "targets: unknown ISA 'riscv' in target 'pulp-model:riscv'"),
        ('"allowed_bits": (3, 16)', "allowed_bits: pulp-model:xpulpv2: bit width(s) 3, 16 not supported"),
        ('"search_steps": -3', "search_steps: expected a positive number of steps"),
        ('"float_steps": -5', "float_steps: expected a positive number of steps"),
        ('"mus": (0.0, math.nan)', "mus: expected finite regularizer strengths >= 0, got nan"),
        ('"data": "mnist"', "data: unknown data set 'mnist'"),
    ],
)
def test_dry_run_fails_with_one_line_on_bad_values(tmp_path, fields, message):
    path = _write(tmp_path, f'{{"name": "x", {fields}}}')
    result = CliRunner().invoke(freebits.main, [str(path), "--dry-run", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {path}: {message}"), result.output
    assert not (tmp_path / "run").exists()


def test_negative_float_steps_fail_before_training(tmp_path, monkeypatch):
    import fb_search

    def refuse(*args, **kwargs):
        raise AssertionError("training started with float_steps=-5")

    monkeypatch.setattr(fb_search, "train_float", refuse)
    cfg = load_config(_write(tmp_path, '{"name": "x", "float_steps": -5}'))
    with pytest.raises(click.ClickException, match=r"float_steps: expected a positive number of steps .*, got -5"):
        pipeline.run_pipeline(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_failing_stage_does_not_print_done(tmp_path, capsys):
    from fbpipe.run import Run

    run = Run(load_config(_write(tmp_path, '{"name": "x"}')), tmp_path / "run")
    with pytest.raises(RuntimeError), run.stage(1, 9, "float training"):
        raise RuntimeError("boom")
    out = capsys.readouterr()
    assert "done in" not in out.out and "failed after" in out.err
    assert "float training" not in run.timings


def test_cli_conventions_of_the_pipeline():
    for flag in ("-h", "--help"):
        result = CliRunner().invoke(freebits.main, [flag])
        assert result.exit_code == 0 and "--no-progress" in result.output and "--dry-run" in result.output
    result = CliRunner().invoke(freebits.main, ["--version"])
    assert result.exit_code == 0 and "fb-schema 0.1.0" in result.output and "fb-deploy 0.1.0" in result.output


# -- the stage records ---------------------------------------------------------------------------------------------
def test_records_reuse_only_on_a_match_and_say_why(tmp_path):
    from fbpipe.records import Records

    said = []
    records = Records(tmp_path, said.append)
    calls = []

    def compute(value):
        def run():
            calls.append(value)
            (tmp_path / "out.json").write_text(json.dumps(value))
            return value, [tmp_path / "out.json"]

        return run

    def load():
        return json.loads((tmp_path / "out.json").read_text())

    assert records.cached("unit", {"steps": 3}, compute(1), load) == 1
    assert records.cached("unit", {"steps": 3}, compute(2), load) == 1 and calls == [1]
    assert records.cached("unit", {"steps": 4}, compute(3), load) == 3
    assert said[-1] == "      re-running unit: inputs changed: steps 3 → 4"
    (tmp_path / "out.json").write_text('{"trunc')
    assert records.cached("unit", {"steps": 4}, compute(4), load) == 4
    assert said[-1].startswith("      re-running unit: out.json changed since it was written (sha256 ")
    up = records.upstream("unit")
    assert records.cached("child", {"upstream": up}, lambda: (5, []), lambda: 5) == 5
    records.cached("unit", {"steps": 5}, compute(6), load)
    assert records.why_rerun("child", {"upstream": records.upstream("unit")}) == "inputs changed: upstream unit changed"
    assert calls == [1, 3, 4, 6]


def test_records_store_paths_relative_to_the_run_directory(tmp_path, monkeypatch):
    from fbpipe.records import Records

    out = tmp_path / "a" / "run"
    out.mkdir(parents=True)
    (out / "x.json").write_text("{}")
    monkeypatch.chdir(tmp_path)
    rel = Records(Path("a/run"), print)
    rel.write("k", {}, [Path("a/run/x.json")])
    record = json.loads((out / "records" / "k.json").read_text())
    assert list(record["outputs"]) == ["x.json"]
    monkeypatch.chdir(out)  # the same run seen from elsewhere
    assert Records(Path("."), print).why_rerun("k", {}) is None
    assert len(record["digest"]) == 64
