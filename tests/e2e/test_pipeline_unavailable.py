"""The pipeline's rule for pairs a target cannot run, on a hand-made incomplete table (stage functions, tinynet).

A pair missing from (or failed in) a target's table is not deployable on that target: the profile stage accepts
the table, the latency-aware search and the knapsack skip the target, free bits moves layers off unavailable
pairs, and selection considers only deployable configs.
"""

import dataclasses
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from fbpipe import report, stages  # noqa: E402
from fbpipe.config import PipelineConfig  # noqa: E402
from fbpipe.run import Candidate, Run  # noqa: E402

from fb_schema import LatencyTable, NetConfig, Precision, Target  # noqa: E402
from fb_schema.topologies import tinynet  # noqa: E402

# XpulpV2-like: 8b/8b fastest; fc at 8b/4b faster still
LAT = {(2, 2): 300, (2, 4): 260, (2, 8): 210, (4, 2): 280, (4, 4): 180, (4, 8): 140, (8, 2): 230, (8, 4): 150,
       (8, 8): 100}  # fmt: skip
MISSING = {"dw1": {(4, 4)}, "fc": {(2, 2), (2, 4), (2, 8), (4, 2), (4, 4), (4, 8), (8, 2)}}


def _table(tmp_path, missing) -> Path:
    net = NetConfig.homogeneous(tinynet(), 8, 8)
    entries, failed = {}, []
    for layer in net.layers:
        key, t = layer.layer_type, net.layer_types[layer.layer_type]
        for a in (2, 4, 8):
            for w in (2, 4, 8) if t.configurable else (None,):
                if (a, w) in missing.get(layer.name, ()):
                    failed.append({"layer_type": key, "b_in": a, "b_wt": w, "error": "SimulationError: hang"})
                else:
                    entries[(key, a, w)] = 50 if (layer.name, a, w) == ("fc", 8, 4) else LAT.get((a, w), 7)
    path = tmp_path / "measured.json"
    LatencyTable(Target("gvsoc-xpulpv2-kit-gcc12", "xpulpv2"), net.layer_types, entries, failed).save(path)
    return path


@pytest.fixture
def run(tmp_path, monkeypatch):
    target = f"table:{_table(tmp_path, MISSING)}"
    cfg = PipelineConfig(name="unavail", network="tinynet", targets=(target,), variants=(), latency_mus=(0.5,))
    monkeypatch.setattr(stages.fb_search, "evaluate", lambda net, ckpt, data: 0.89)  # scoring is not under test
    return Run(cfg, tmp_path / "run", progress=False)


def _candidate(run, cid, bits, acc):
    net = NetConfig.homogeneous(tinynet(), bits, bits)
    path = run.out / "configs" / f"{cid}.json"
    dataclasses.replace(net, metrics={"val_accuracy": acc, "accuracy_stage": "bb-eval"}).save(path)
    return Candidate(cid, path, "unused-checkpoint", "homogeneous", f"homogeneous/{cid}", bits=bits)


def test_incomplete_table_runs_with_the_unavailable_rule(run, capsys):
    stages.profile(run)
    out = capsys.readouterr().out
    assert "8 pairs unavailable" in out
    ((target, table),) = run.tables().items()
    assert stages.missing_pairs(table, (2, 4, 8)) == 8
    assert stages.search(run, None, "unused") == []  # latency-aware search skipped: its regularizer needs every pair
    assert "latency-aware search skipped (its table lacks 8 pairs)" in capsys.readouterr().out

    base, b4 = _candidate(run, "8b", 8, 0.90), _candidate(run, "4b", 4, 0.95)
    (child,) = stages.apply_free_bits(run, None, [base, b4])
    net = child.load((2, 4, 8))
    # dw1's 4b/4b cannot run: raised to the fastest available pair >= it (8b/8b, 100); fc to 8b/4b (50)
    assert net.precisions()["dw1"] == Precision(8, 8) and net.precisions()["fc"] == Precision(8, 4)
    assert net.provenance["raised_unavailable"] == {"dw1": ["4b/4b", "8b/8b"], "fc": ["4b/4b", "8b/4b"]}
    assert "parent not deployable" in capsys.readouterr().out

    # 4b/4b (the most accurate) is not deployable and must not be selected; its FB child is, within 1.5 pp
    picks = stages.choose(run, [base, b4, child])[target]
    assert stages.deployable_ids(run, [base, b4, child], ["4b", child.id]) == [child.id]  # what is fine-tuned
    assert picks == {"0.5pp": "8b", "1.5pp": child.id}  # 264 cycles: above the latency target (0.8 × 314)


def test_target_without_deployable_baseline_selects_nothing(tmp_path, monkeypatch, capsys):
    missing = {"fc": {(a, w) for a in (2, 4, 8) for w in (2, 4, 8)}}  # no linear kernel runs
    cfg = PipelineConfig(name="none", network="tinynet", targets=(f"table:{_table(tmp_path, missing)}",))
    run = Run(cfg, tmp_path / "run", progress=False)
    stages.profile(run)
    base, b4 = _candidate(run, "8b", 8, 0.90), _candidate(run, "4b", 4, 0.95)
    assert stages.choose(run, [base, b4]) == {cfg.targets[0]: {}}
    assert "8b/8b is not deployable there (0 deployable candidates); nothing selected" in capsys.readouterr().out
    results = {"selection": {cfg.targets[0]: {}}, "slugs": {cfg.targets[0]: "t"},
               "configs": {cid: {"method": "homogeneous", "bits": bits, "latency": {cfg.targets[0]: None}}
                           for cid, bits in (("8b", 8), ("4b", 4))},
               "tables": {cfg.targets[0]: {"unavailable_pairs": 9}}}  # fmt: skip
    assert report.table_one(results) == []
    assert report.hypervolumes(results, (1.25, 0.5)) == {cfg.targets[0]: {}}
    text = "\n".join(report._deployability(results))
    assert "Not deployable here (2 of 2): `8b`, `4b`" in text and "no configuration is selected" in text
