"""The whole pipeline on a reduced config: hard-asserts what the method guarantees, reports the rest."""

import json
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import ROOT

from fb_heuristic import network_latency
from fb_schema import LatencyTable, NetConfig

sys.path.insert(0, str(ROOT / "tools"))

from fbpipe import pipeline  # noqa: E402
from fbpipe.config import load_config  # noqa: E402

pytestmark = pytest.mark.slow  # the whole pipeline, trained


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e")
    cfg = load_config(ROOT / "tests" / "e2e" / "small_config.py")
    cwd = os.getcwd()
    os.chdir(out.parent)  # a relative run directory, as `--out runs/x` gives: stored paths must not depend on it
    try:
        pipeline.run_pipeline(cfg, Path(out.name))
    finally:
        os.chdir(cwd)
    return out


@pytest.fixture(scope="module")
def results(run_dir):
    return json.loads((run_dir / "results.json").read_text())


def test_free_bits_children_never_slower_nor_less_precise(run_dir, results):
    tables = {t: LatencyTable.load(run_dir / "tables" / f"{slug}.json") for t, slug in results["slugs"].items()}
    children = {cid: c for cid, c in results["configs"].items() if c["parent"]}
    assert len(children) == 3 * (4 + 1)  # 3 targets × (4 BB configs + 4b/4b)
    for cid, c in children.items():
        parent = NetConfig.load(run_dir / results["configs"][c["parent"]]["path"])
        child = NetConfig.load(run_dir / c["path"])
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


def test_one_network_is_fine_tuned_and_deployed_once(run_dir, results):
    """Candidates that are one network (same precisions and starting checkpoint; here 4b/4b's free-bits child on
    the two XpulpNN targets) share one fine-tuning and one deployment."""
    tuned: dict[tuple[str, str], str] = {}  # (config sha256, starting checkpoint) -> candidate fine-tuned for it
    shared = 0
    for cid, info in results["finetuned"].items():
        config = NetConfig.load(run_dir / results["configs"][cid]["path"])
        identity = (config.sha256(), config.provenance.get("checkpoint") or results["configs"][cid]["parent"])
        if "same_as" in info:
            shared += 1
            source = info["same_as"]
            assert tuned.get(identity) == source, cid
            assert results["finetuned"][source]["artifact"] == info["artifact"], cid
            assert results["deployed"][cid]["integer_accuracy"] == results["deployed"][source]["integer_accuracy"]
            assert (run_dir / results["deployed"][cid]["dir"] / "model.onnx").is_file(), cid
        else:
            assert identity not in tuned, f"{cid} fine-tuned again the network of {tuned.get(identity)}"
            tuned[identity] = cid
    assert shared >= 1, "expected the XpulpNN1 and XpulpNN2 free-bits children of 4b/4b to be one network"


def test_only_the_knapsack_source_computes_sensitivities(run_dir, results):
    with_sens = [cid for cid, c in results["configs"].items()
                 if "sensitivity" in NetConfig.load(run_dir / c["path"]).metrics]  # fmt: skip
    assert with_sens == ["bb-orig-mu0"]


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


# -- reuse checks what it reuses (each case truncates one stage output of the finished run) ----------------------
def _records(run_dir) -> dict[str, dict]:
    return {r["key"]: r for r in (json.loads(p.read_text()) for p in (run_dir / "records").glob("*.json"))}


def _expected_reruns(before: dict, after: dict, damaged: str) -> set[str]:
    """The damaged unit, and every unit with an upstream that re-ran and changed its digest (transitively)."""
    ran = {damaged}
    grew = True
    while grew:
        grew = False
        for key, rec in after.items():
            ups = rec["inputs"].get("upstream", {})
            if key not in ran and any(u in ran and before[u]["digest"] != after[u]["digest"] for u in ups):
                ran.add(key)
                grew = True
    return ran


def _selected_finetuned(results) -> str:
    return next(c for c in results["finetuned"] if c not in ("8b", "4b"))


@pytest.mark.parametrize(
    ("damaged", "output"),
    [
        ("table/pulp-xpulpnn1", lambda r: "tables/pulp-xpulpnn1.json"),
        ("finetune/8b", lambda r: "finetune/8b/result.json"),
        ("finetune/{sel}", lambda r: str(Path(r["finetuned"][_selected_finetuned(r)]["artifact"]).with_suffix(".npz"))),
        ("deploy/4b", lambda r: "deploy/4b/model.onnx"),
    ],
)
def test_truncated_output_reruns_its_stage_and_dependents_only(run_dir, results, damaged, output):
    damaged = damaged.format(sel=_selected_finetuned(results))
    path = run_dir / output(results)
    before = _records(run_dir)
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])
    cfg = load_config(ROOT / "tests" / "e2e" / "small_config.py")
    pipeline.run_pipeline(cfg, run_dir)
    assert path.stat().st_size > size // 2, f"{output(results)} is still truncated"
    from fbpipe.records import path_sha256

    after = _records(run_dir)
    for rel, sha in after[damaged]["outputs"].items():  # the outputs are whole again, and recorded as such
        assert path_sha256(run_dir / rel) == sha, rel
    new = json.loads((run_dir / "results.json").read_text())
    assert set(new["work"]["ran"]) == _expected_reruns(before, after, damaged)
    assert set(new["work"]["ran"]) | set(new["work"]["reused"]) == set(after)
    for cid, d in new["deployed"].items():
        assert d["verified"] and not d["check_errors"], cid


def test_resumes_from_another_directory(run_dir, results, tmp_path, monkeypatch):
    for section in ("tables", "configs"):
        for item in results[section].values():
            assert not os.path.isabs(item["path"]) and (run_dir / item["path"]).is_file()
    for info in results["finetuned"].values():
        assert not os.path.isabs(info["artifact"]) and (run_dir / info["artifact"]).is_file()
    (run_dir / "deploy" / "8b" / "result.json").unlink()  # deploy 8b runs again, reading the fine-tuned artifact
    monkeypatch.chdir(tmp_path)
    cfg = load_config(ROOT / "tests" / "e2e" / "small_config.py")
    pipeline.run_pipeline(cfg, Path(os.path.relpath(run_dir, tmp_path)))
    new = json.loads((run_dir / "results.json").read_text())
    assert "deploy/8b" in new["work"]["ran"]
    assert new["deployed"]["8b"]["verified"]
