"""The whole pipeline on a reduced config: hard-asserts what the method guarantees, reports the rest."""

import json
import re
import sys
from pathlib import Path

import pytest

from fb_heuristic import network_latency
from fb_schema import LatencyTable, NetConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from fbpipe import pipeline  # noqa: E402
from fbpipe.config import load_config  # noqa: E402

pytestmark = pytest.mark.slow  # the whole pipeline, trained


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    cfg = load_config(ROOT / "tests" / "e2e" / "small_config.py")
    pipeline.run_pipeline(cfg, out)
    return out


@pytest.fixture(scope="module")
def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_free_bits_children_never_slower_nor_less_precise(run_dir, results):
    tables = {t: LatencyTable.load(run_dir / "tables" / f"{slug}.json") for t, slug in results["slugs"].items()}
    children = {cid: c for cid, c in results["configs"].items() if c["parent"]}
    assert len(children) == 3 * (4 + 1)  # 3 targets × (4 BB configs + 4b/4b)
    for cid, c in children.items():
        parent, child = NetConfig.load(results["configs"][c["parent"]]["path"]), NetConfig.load(c["path"])
        table = tables[c["target"]]
        assert network_latency(child, table) <= network_latency(parent, table), cid
        for a, b in zip(parent.layers, child.layers):
            assert b.b_in >= a.b_in and (a.b_wt is None or b.b_wt >= a.b_wt), (cid, a.name)


def test_exported_models_check_and_verify_bit_exact(results):
    assert results["deployed"], "nothing was deployed"
    for cid, d in results["deployed"].items():
        assert d["check_errors"] == [], cid
        assert d["verified"], cid


def test_integer_argmax_matches_fake_quant(results):
    for cid, d in results["deployed"].items():
        print(f"{cid}: integer accuracy {d['integer_accuracy']:.2%}, argmax differs on {d['argmax_disagreements']}")
        assert d["argmax_disagreements"] <= 2, cid


def test_report_numbers_equal_results(run_dir, results):
    report = (run_dir / "report.md").read_text()
    for row in results["table1"]:
        line = next(l for l in report.splitlines() if f"| `{row['config']}` |" in l and row["target"] in l)
        assert f"{row['latency']:,}" in line and f"{row['latency_vs_8b']:+.1%}" in line
        assert f"{row['fq_accuracy']:.2%}" in line
        if row["tqt_accuracy"] is not None:
            assert f"{row['tqt_accuracy']:.2%}" in line
    for slug in results["slugs"].values():
        assert (run_dir / f"pareto_{slug}.png").stat().st_size > 10_000
    assert re.search(r"\| fb-schema 0\.1\.0|fb-schema 0\.1\.0", report)


def test_second_run_reuses_every_stage(run_dir, monkeypatch):
    import fb_search

    def refuse(*args, **kwargs):
        raise AssertionError("a finished stage ran again")

    for name in ("train_float", "search", "evaluate", "finetune"):
        monkeypatch.setattr(fb_search, name, refuse)
    cfg = load_config(ROOT / "tests" / "e2e" / "small_config.py")
    pipeline.run_pipeline(cfg, run_dir)
