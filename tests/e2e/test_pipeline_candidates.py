"""What a pipeline candidate is comes from its fields, never from its id: stage functions on tinynet and a
hand-made table, with candidates whose ids do not follow the pipeline's naming (or mimic another kind's)."""

import dataclasses
import sys

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "tools"))

from fbpipe import gvsoc, pipeline, report, stages  # noqa: E402
from fbpipe.config import PipelineConfig  # noqa: E402
from fbpipe.run import Candidate, Run  # noqa: E402

from fb_schema import LatencyTable, NetConfig, Target  # noqa: E402
from fb_schema.topologies import tinynet  # noqa: E402

BITS = (2, 4, 8)


def _table(path) -> str:
    """A complete table: latency grows with both widths, so lower precision is always faster."""
    net = NetConfig.homogeneous(tinynet(), 8, 8)
    entries = {
        (layer.layer_type, a, w): 10 * a + (w or 0)
        for layer in net.layers
        for a in BITS
        for w in (BITS if net.layer_types[layer.layer_type].configurable else (None,))
    }
    LatencyTable(Target("hand-made", "xpulpv2"), net.layer_types, entries).save(path)
    return f"table:{path}"


@pytest.fixture
def run(tmp_path, monkeypatch):
    cfg = PipelineConfig(name="fields", network="tinynet", targets=(_table(tmp_path / "t.json"),),
                         knapsack_budgets=(0.9,), margins_pp=(1.0,))  # fmt: skip
    monkeypatch.setattr(stages.fb_search, "evaluate", lambda net, ckpt, data: 0.5)  # scoring is not under test
    r = Run(cfg, tmp_path / "run", progress=False)
    stages.profile(r)
    return r


def _save(run, cid, width, acc, **metrics) -> NetConfig:
    net = NetConfig.homogeneous(tinynet(), width, width)
    net = dataclasses.replace(net, metrics={"val_accuracy": acc, "accuracy_stage": "bb-eval", **metrics})
    net.save(run.out / "configs" / f"{cid}.json")
    return net


def _candidate(run, cid, width, acc, method, **fields) -> Candidate:
    """A candidate whose config is homogeneous at ``width``; what it is, is up to ``method`` and ``fields``."""
    _save(run, cid, width, acc)
    return Candidate(cid, run.out / "configs" / f"{cid}.json", f"ckpt-of-{cid}", method, f"x/{cid}", **fields)


def _sensitivities(net: NetConfig) -> dict:
    return {
        layer.name: {f"{a},{w}": (8 - a) + (8 - w) for a in BITS for w in BITS}
        for layer in net.layers
        if layer.b_wt is not None
    }


def test_unknown_method_is_refused(tmp_path):
    with pytest.raises(ValueError, match="candidate c: method: expected one of bb, latency-bb, .*got 'fb'"):
        Candidate("c", tmp_path / "c.json", "ckpt", "fb")


def test_free_bits_skips_the_baseline_by_its_fields(run):
    ref = _candidate(run, "reference", 8, 0.9, "homogeneous", bits=8)  # the baseline under another name
    low = _candidate(run, "8b", 4, 0.8, "homogeneous", bits=4)  # named like the baseline, but 4-bit
    children = stages.apply_free_bits(run, None, [ref, low])
    ((target, _),) = run.tables().items()
    assert [(c.id, c.method, c.parent, c.target, c.checkpoint) for c in children] == [
        ("fb-table-t--8b", "free-bits", "8b", target, "ckpt-of-8b")
    ]


def test_knapsack_starts_from_the_unregularized_search_by_its_fields(run, capsys):
    base = NetConfig.homogeneous(tinynet(), 8, 8)
    for cid in ("bb-orig-mu0", "plain"):
        _save(run, cid, 8, 0.9, sensitivity=_sensitivities(base))
    path = run.out / "configs"
    decoy = Candidate("bb-orig-mu0", path / "bb-orig-mu0.json", "decoy", "latency-bb", "s/d", run.cfg.targets[0],
                      variant="orig", mu=0.0)  # fmt: skip
    regularized = Candidate("plain-mu0", path / "plain.json", "reg", "bb", "s/r", variant="orig", mu=0.01)
    source = Candidate("plain", path / "plain.json", "ckpt-of-plain", "bb", "s/p", variant="orig", mu=0.0)
    (ks,) = stages.knapsack_candidates(run, None, [decoy, regularized, source])
    assert (ks.id, ks.method, ks.checkpoint, ks.budget, ks.target) == (
        "ks-table-t-0.9", "knapsack", "ckpt-of-plain", 0.9, run.cfg.targets[0],
    )  # fmt: skip
    capsys.readouterr()
    assert stages.knapsack_candidates(run, None, [decoy, regularized]) == []  # no unregularized plain search
    assert "no search with μ = 0 (mus)" in capsys.readouterr().out


def test_selection_compares_with_the_baseline_by_its_fields(run):
    ref = _candidate(run, "reference", 8, 0.90, "homogeneous", bits=8)
    fake = _candidate(run, "8b", 4, 0.50, "homogeneous", bits=4)  # named like the baseline: far less accurate
    near = _candidate(run, "near", 4, 0.895, "bb", variant="orig", mu=0.1)
    ((target, _),) = run.tables().items()
    assert stages.choose(run, [fake, ref, near]) == {target: {"1pp": "near", "latency_target": "near"}}
    with pytest.raises(ValueError, match="needs the 8b/8b candidate"):
        stages.choose(run, [fake, near])


def test_what_is_fine_tuned_follows_the_fields(run):
    ref = _candidate(run, "ref", 8, 0.9, "homogeneous", bits=8)
    four = _candidate(run, "quarter", 4, 0.8, "homogeneous", bits=4)
    mimic = _candidate(run, "fb-table-t--4b", 4, 0.8, "knapsack", target=run.cfg.targets[0])
    child = _candidate(run, "child", 4, 0.8, "free-bits", target=run.cfg.targets[0], parent="quarter")
    ids = pipeline._todo_ids(run, [ref, four], [mimic, child], {"t": {"1pp": "mimic"}})
    assert ids == ["ref", "quarter", "child", "mimic"]


def _records(target):
    def rec(method, latency, acc, **fields):
        return {"method": method, "latency": {target: latency}, "val_accuracy": acc, "target": None, "parent": None,
                "sha256": "0" * 64, **fields}  # fmt: skip

    return {
        "ref": rec("homogeneous", 100, 0.90, bits=8),
        "quarter": rec("homogeneous", 40, 0.80, bits=4),
        "8b": rec("bb-orig", 70, 0.88),  # named like the baseline
        "child": rec("fb", 60, 0.89, target=target, parent="8b"),
        "fb-t--4b": rec("fb", 30, 0.81, target=target, parent="quarter"),
        "fb-t--bb-x": rec("knapsack", 50, 0.85, target=target),  # named like a BB parent's child
    }


def test_report_reads_the_records_fields():
    target = "table:t.json"
    configs = _records(target)
    results = {"configs": configs, "selection": {target: {"1pp": "child"}}, "slugs": {target: "other"},
               "finetuned": {}, "deployed": {}}  # fmt: skip
    rows = [(r["row"], r["config"], r["latency_vs_8b"]) for r in report.table_one(results)]
    assert rows == [
        ("8b baseline", "ref", 0.0),
        ("1pp margin", "child", pytest.approx(-0.4)),
        ("4b + FB", "fb-t--4b", pytest.approx(-0.7)),
        ("4b baseline", "quarter", pytest.approx(-0.6)),
    ]
    members = {s: sorted(cid for cid, c in configs.items() if report.in_source(s, c, configs)) for s in report.SOURCES}
    assert members == {"BB": ["8b"], "BB+FB": ["8b", "child"], "latency-BB+FB": [], "knapsack": ["fb-t--bb-x"]}
    hv = report.hypervolumes(results, (1.25, 0.5))[target]
    assert hv["BB"] == pytest.approx((1.25 - 0.7) * (0.88 - 0.5))
    assert hv["BB+FB"] == pytest.approx((0.7 - 0.6) * 0.39 + (1.25 - 0.7) * 0.39)


def test_gvsoc_flows_follow_the_target_a_network_was_made_for():
    selection = {"pulp-model:xpulpv2": {}, "pulp-model:xpulpnn1": {}}
    assert gvsoc.flows_of("fb-pulp-xpulpv2--4b", selection, "pulp-model:xpulpnn1") == ["mixed-hw"]
    assert gvsoc.flows_of("anything", selection, "pulp-model:xpulpv2") == ["mixed-sw"]


def test_a_network_is_scored_once_per_checkpoint(run, monkeypatch):
    """Free bits and the knapsack often reach one config on several targets: it is evaluated once per checkpoint."""
    calls = []
    monkeypatch.setattr(stages.fb_search, "evaluate", lambda net, ckpt, data: calls.append((net.sha256(), ckpt)) or 0.7)
    a = NetConfig.homogeneous(tinynet(), 4, 4)
    b = a.with_metrics(val_accuracy=0.1)  # the same network: metrics are not its identity
    assert [run.evaluate(n, ckpt, None) for n, ckpt in ((a, "c1"), (b, "c1"), (a, "c2"))] == [0.7, 0.7, 0.7]
    assert calls == [(a.sha256(), "c1"), (a.sha256(), "c2")]
