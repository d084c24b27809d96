"""Regression tests: a damaged point cache is measured again, sweep exit codes, calibrate reads CSV, progress lines."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from fb_profile import sweep
from fb_profile._cli import main
from fb_schema import LatencyTable
from fb_schema.topologies import tinynet

TARGET = "pulp-model:xpulpnn1"


def _cache_file(cache_dir):
    (path,) = [p for p in cache_dir.glob("*.jsonl")]
    return path


@pytest.mark.parametrize(
    ("damage", "what"),
    [
        (lambda line: line[:20] + b"\xff" + line[21:], "codec can't decode byte 0xff"),
        (lambda line: line.replace(b'"latency": ', b'"latency": Infinity, "x": '), "finite"),
        (lambda line: line.replace(b'"latency": ', b'"latency": -'), "non-negative"),
    ],
)
def test_damaged_cache_lines_are_measured_again_with_a_warning(tmp_path, capfd, damage, what):
    fresh = sweep(tinynet(), TARGET, cache_dir=False, progress=False)
    sweep(tinynet(), TARGET, cache_dir=tmp_path, progress=False)
    cache = _cache_file(tmp_path)
    lines = cache.read_bytes().splitlines(keepends=True)
    lines[3] = damage(lines[3])
    cache.write_bytes(b"".join(lines))
    capfd.readouterr()
    table = sweep(tinynet(), TARGET, cache_dir=tmp_path, progress=False)
    err = capfd.readouterr().err
    assert f"warning: {cache}: skipped 1 unreadable line(s)" in err and "line 4" in err and what in err
    assert table.entries == fresh.entries and table.failed == []
    sweep(tinynet(), TARGET, cache_dir=tmp_path, progress=False)  # the bad line is gone: no second warning
    assert "warning" not in capfd.readouterr().err


def test_append_after_a_torn_last_line_starts_a_new_line(tmp_path):
    sweep(tinynet(), TARGET, cache_dir=tmp_path, progress=False)
    cache = _cache_file(tmp_path)
    lines = cache.read_bytes().splitlines(keepends=True)
    cache.write_bytes(b"".join(lines[:-1]) + lines[-1][:10])  # interrupted in the middle of the last line
    sweep(tinynet(), TARGET, cache_dir=tmp_path, progress=False)
    assert all(json.loads(line) for line in cache.read_bytes().splitlines()[-1:])
    assert len(sweep(tinynet(), TARGET, cache_dir=tmp_path, progress=False).entries) == len(lines)


def _measured_csv(tmp_path, rows: int | None = None):
    table = sweep(tinynet(), "pulp-model:xpulpv2", cache_dir=False, progress=False)
    entries = list(table.entries.items())[:rows]
    text = "layer_type,b_in,b_wt,latency\n" + "".join(
        f"{k},{a},{'' if w is None else w},{v}\n" for (k, a, w), v in entries
    )
    path = tmp_path / "measured.csv"
    path.write_text(text)
    return path


def test_sweep_exits_nonzero_when_points_failed_unless_allowed(tmp_path):
    csv = _measured_csv(tmp_path, rows=5)  # most points are missing: they fail
    args = ["sweep", "--network", "tinynet", "--target", f"table:{csv}", "--no-cache", "--no-progress"]
    r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "a.json")])
    assert r.exit_code == 1
    assert "point(s) failed (pass --allow-failed to accept)" in r.output
    r = CliRunner().invoke(main, [*args, "-o", str(tmp_path / "b.json"), "--allow-failed"])
    assert r.exit_code == 0, r.output
    assert LatencyTable.load(tmp_path / "b.json").failed


def test_calibrate_reads_csv_like_the_table_target(tmp_path):
    csv = _measured_csv(tmp_path)
    out = tmp_path / "c.json"
    r = CliRunner().invoke(main, ["calibrate", "--model", "xpulpv2", "--measured", str(csv), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert r.output.startswith("fitted ") and "before: median |error|" in r.output
    assert json.loads(out.read_text())["fit"]["points"] > 20


def test_progress_lines_when_output_is_not_a_terminal(capfd, monkeypatch):
    monkeypatch.delenv("FB_NO_PROGRESS", raising=False)
    sweep(tinynet(), TARGET, cache_dir=False, progress=True)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith(f"sweep {TARGET}: ")]
    assert lines and lines[-1].startswith(f"sweep {TARGET}: 33/33 points (100%)")
    assert "\r" not in err
    monkeypatch.setenv("FB_NO_PROGRESS", "1")
    sweep(tinynet(), TARGET, cache_dir=False, progress=True)
    assert capfd.readouterr().err == ""
