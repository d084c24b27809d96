"""Imported tables (table backend), cross-target comparison and model calibration."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fb_profile import PulpModel, builtin_constants, layer_types_of, load_constants, make_backend, sweep
from fb_profile._calibrate import calibrate, median_error
from fb_profile._cli import main
from fb_profile._compare import compare_tables, spearman
from fb_schema import LatencyTable, LayerType
from fb_schema.topologies import digitsnet, tinynet

CONV = "conv2d_8x8x1_o8_k3x3_s1x1_p1.1.1.1_g1"
ADD = "add_8x8x8_o8_k1x1_s1x1_p0.0.0.0_g1"


def test_csv_import_validates_keys_and_fills_a_table(tmp_path):
    path = tmp_path / "board.csv"
    path.write_text(f"layer_type,b_in,b_wt,latency\n{CONV},8,8,1200\n{CONV},4,4,900\n{ADD},8,,300\n")
    table = sweep(None, f"table:{path}", cache_dir=False, progress=False)
    assert table.entries == {(CONV, 8, 8): 1200, (CONV, 4, 4): 900, (ADD, 8, None): 300}
    assert len(table.failed) == 7 + 2  # the points the file lacks are listed, not dropped
    assert table.failed[0]["error"].startswith("LookupError: ")
    assert table.failed[0]["error"].endswith(f"board.csv has no measurement of {CONV} at (2, 2)")
    assert table.target.name == "table-board" and table.target.backend == "table"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("layer,b_in,b_wt,latency\n", "line 1: expected the header layer_type,b_in,b_wt,latency"),
        ("layer_type,b_in,b_wt,latency\nconv_bad,8,8,1\n", "line 2: layer_type: expected a layer-type key"),
        (f"layer_type,b_in,b_wt,latency\n{CONV},8,,1\n", "line 2: b_wt: expected an integer for conv2d"),
        (f"layer_type,b_in,b_wt,latency\n{ADD},8,8,1\n", "line 2: b_wt: expected empty for non-configurable add"),
        (f"layer_type,b_in,b_wt,latency\n{CONV},8,8,x\n", "line 2: latency: expected an integer, got 'x'"),
        (f"layer_type,b_in,b_wt,latency\n{CONV},8,8,1\n{CONV},8,8,2\n", "line 3: duplicate point"),
    ],
)
def test_csv_errors_name_file_line_and_field(tmp_path, text, message):
    path = tmp_path / "m.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match="m.csv: " + message.replace("(", r"\(").replace(")", r"\)")) as e:
        make_backend(f"table:{path}")
    assert "\n" not in str(e.value)


def test_json_import_of_rows_and_of_a_latency_table(tmp_path):
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps([{"layer_type": CONV, "b_in": 8, "b_wt": 8, "latency": 5}]))
    assert make_backend(f"table:{rows}").points == {(CONV, 8, 8): 5}
    model = sweep(tinynet(), "pulp-model:xpulpv2", cache_dir=False, progress=False)
    model.save(tmp_path / "t.json")
    imported = sweep(tinynet(), f"table:{tmp_path / 't.json'}", cache_dir=False, progress=False)
    assert imported.entries == model.entries and not imported.failed
    with pytest.raises(ValueError, match="measured at b_out=8, the sweep asks for b_out=4"):
        sweep(tinynet(), f"table:{tmp_path / 't.json'}", cache_dir=False, progress=False, b_out=4)


def test_compare_names_layers_whose_best_pair_differs_between_isas(mnv1_tables, capsys):
    tables = [mnv1_tables[i] for i in ("xpulpv2", "xpulpnn1", "xpulpnn2")]
    result = compare_tables(tables)
    with capsys.disabled():
        print("\n" + result.report().splitlines()[1] + "\n" + result.report().splitlines()[3])
    pw = "conv2d_14x14x384_o384_k1x1_s1x1_p0.0.0.0_g1"
    assert pw in result.disagree
    assert [str(p) for p in result.best[pw]] == ["8b/8b", "2b/2b", "2b/2b"]
    assert 0.0 < result.spearman[(0, 1)] < 1.0
    assert "best pair differs on" in result.report() and pw in result.report()


def test_spearman_is_a_rank_correlation():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 400]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2], [5, 5, 6]) == pytest.approx(1.0)


def test_calibrate_recovers_perturbed_constants(capsys):
    base = builtin_constants("xpulpv2")
    factors = {
        "eta": 0.9,
        "b_blk": 1.2,
        "t_tile_ovh": 0.8,
        "t_fixed": 1.3,
        "dw_out": 1.1,
        "dma_1b": 0.85,
        "bw_l3": 1.25,
    }
    true = base.with_free(**{k: getattr(base, k) * f for k, f in factors.items()})
    types = {**layer_types_of(digitsnet()), **{k: lt for k, lt in layer_types_of(_mnv1_sample()).items()}}
    measured = sweep(types, PulpModel(true), cache_dir=False, progress=False)
    result = calibrate(base, measured)
    with capsys.disabled():
        print(
            f"\n[calibrate] median error {100 * result.before['median']:.2f} % -> {100 * result.after['median']:.3f} %"
        )
    assert result.before["median"] > 0.03
    assert result.after["median"] < 0.02
    for name in factors:
        assert getattr(result.constants, name) == pytest.approx(getattr(true, name), rel=0.05), name


def _mnv1_sample():
    from fb_schema.topologies import mobilenetv1

    return mobilenetv1(0.75, 224)


def test_calibrate_cli_writes_constants_the_sweep_loads(tmp_path):
    base = builtin_constants("xpulpnn1")
    measured = sweep(digitsnet(), PulpModel(base.with_free(b_blk=200.0)), cache_dir=False, progress=False)
    measured.save(tmp_path / "m.json")
    out = tmp_path / "fit.json"
    r = CliRunner().invoke(main, ["calibrate", "--model", "xpulpnn1", "--measured", str(tmp_path / "m.json"), "-o",
                                  str(out), "--free", "b_blk"])  # fmt: skip
    assert r.exit_code == 0, r.output
    assert "before: median |error|" in r.output and "after: median |error| 0.00 %" in r.output
    assert load_constants(out).b_blk == pytest.approx(200.0, rel=1e-3)
    refit = sweep(digitsnet(), "pulp-model:xpulpnn1", cache_dir=False, progress=False, constants=out)
    assert median_error(measured, refit) < 1e-3
    r = CliRunner().invoke(main, ["compare", str(tmp_path / "m.json"), str(tmp_path / "m.json"), "--plot",
                                  str(tmp_path / "c.png")])  # fmt: skip
    assert r.exit_code == 0 and "Spearman 1.000" in r.output and (tmp_path / "c.png").exists()


def test_calibrate_rejects_unknown_constants():
    table = LatencyTable.from_json(sweep(tinynet(), "pulp-model:xpulpv2", cache_dir=False, progress=False).to_json())
    with pytest.raises(ValueError, match="not a free model constant: inner"):
        calibrate(builtin_constants("xpulpv2"), table, ["inner"])
    assert LayerType.from_key(CONV).op == "conv2d"
