"""Pipeline configs: bad input is a one-line error naming the file and field; --dry-run prints the plan."""

import subprocess
import sys
from pathlib import Path

import click
import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

from fbpipe.config import load_config  # noqa: E402


def _write(tmp_path, body: str) -> Path:
    path = tmp_path / "cfg.py"
    path.write_text(f"def get_config():\n    return {body}\n")
    return path


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"name": "x", "epochs": 3}', "epochs: unknown field"),
        ('{"network": "digitsnet"}', "name: a required field is missing"),
        ('{"name": "x", "targets": ("gvsoc:xpulpv2",)}', "targets: expected 'pulp-model:<isa>' or 'table:<file>'"),
        ('{"name": "x", "targets": ("table:nowhere.json",)}', "targets: 'table:nowhere.json': no such measured table"),
        ('{"name": "x", "variants": ("fancy",)}', "variants: expected 'orig' or 'locked'"),
        ('{"name": "x", "seed": "zero"}', "seed: expected a number"),
        ('{"name": "x", "gvsoc": "yes"}', "gvsoc: expected True or False"),
    ],
)
def test_bad_config_is_one_line_error(tmp_path, body, message):
    path = _write(tmp_path, body)
    with pytest.raises(click.ClickException) as info:
        load_config(path)
    assert str(path) in info.value.message and message in info.value.message
    assert "\n" not in info.value.message


def test_missing_file_and_missing_get_config(tmp_path):
    with pytest.raises(click.ClickException, match="no such config file"):
        load_config(tmp_path / "absent.py")
    (tmp_path / "empty.py").write_text("x = 1\n")
    with pytest.raises(click.ClickException, match="get_config"):
        load_config(tmp_path / "empty.py")


def test_dry_run_prints_the_plan_and_trains_nothing(tmp_path):
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "freebits.py"), str(ROOT / "configs" / "mnv2_imagenet.py"),
         "--dry-run", "--out", str(out)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "network mobilenetv2 (64 layers, 37 layer types)" in result.stdout
    assert "Bayesian Bits: variants ['orig', 'locked'] × μ [0.0, 0.05, 0.1, 0.18, 0.3] = 10 runs" in result.stdout
    assert not out.exists()


def test_user_network_data_and_recipe_files_relative_to_the_config(tmp_path):
    import numpy as np

    from fb_schema.topologies import load_topology, save_topology

    save_topology(load_topology(ROOT / "examples" / "dscnn.topology.json"), tmp_path / "net.json")
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, (40, 1, 49, 10)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x[:32], y_train=rng.integers(0, 12, 32), x_val=x[32:],
             y_val=rng.integers(0, 12, 8))  # fmt: skip
    (tmp_path / "recipe.py").write_text("FLOAT_STEPS = 7\n")
    body = ('{"name": "mine", "network": "net.json", "data": "d.npz", "data_layout": "nchw", '
            '"recipe": "recipe.py", "input_range": (-2.0, 2.0)}')  # fmt: skip
    cfg = load_config(_write(tmp_path, body))
    assert cfg.network == str(tmp_path / "net.json") and cfg.recipe == str(tmp_path / "recipe.py")
    result = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "freebits.py"), str(tmp_path / "cfg.py"), "--dry-run"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "network dscnn (" in result.stdout and "range [-2, 2]; data checked: 32 train / 8 val" in result.stdout
    bad = _write(tmp_path, body.replace("(-2.0, 2.0)", "(0.0, 1.0)"))
    failed = subprocess.run([sys.executable, str(ROOT / "tools" / "freebits.py"), str(bad), "--dry-run"],
                            capture_output=True, text=True)  # fmt: skip
    assert failed.returncode != 0 and "outside dscnn's input range [0, 1]" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    with pytest.raises(click.ClickException, match="data: no such file"):
        load_config(_write(tmp_path, '{"name": "x", "data": "absent.npz"}'))


def test_measured_demo_reads_the_committed_gvsoc_tables():
    cfg = load_config(ROOT / "configs" / "demo_measured.py")
    assert [cfg.target_slug(t) for t in cfg.targets] == [
        "table-digitsnet_gvsoc-xpulpv2-kit-gcc12",
        "table-digitsnet_gvsoc-xpulpnn1-kit-gcc12",
    ]
    assert all(Path(t.removeprefix("table:")).is_file() for t in cfg.targets)


def test_incomplete_measured_table_is_accepted_with_its_unavailable_pairs(tmp_path, capsys):
    from fbpipe.config import PipelineConfig
    from fbpipe.run import Run
    from fbpipe.stages import missing_pairs, profile

    from fb_schema import LatencyTable

    table = ROOT / "tables" / "gvsoc" / "digitsnet_gvsoc-xpulpv2-kit-gcc12.json"
    run = Run(PipelineConfig(name="t", targets=(f"table:{table}",)), tmp_path / "run")
    profile(run)  # the pairs that fail on GVSOC are not deployable there; the pipeline goes on
    out = capsys.readouterr().out
    assert "17 pairs unavailable (failed there, first conv2d_16x16x1_o16_k3x3_s1x1_p1.1.1.1_g1 (4, 2))" in out
    written = LatencyTable.load(run.table_path(run.cfg.targets[0]))
    assert len(written.entries) == 61 and len(written.failed) == 17
    assert missing_pairs(written, run.cfg.allowed_bits) == 17
