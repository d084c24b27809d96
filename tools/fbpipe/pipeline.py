"""The whole run, top to bottom (one function you can read in order)."""

from __future__ import annotations

import time
from pathlib import Path

import click

from fb_schema import NetConfig, read_json, write_json
from fbpipe import deliver, gvsoc, report, stages
from fbpipe.checks import check_config, load_data
from fbpipe.config import PipelineConfig
from fbpipe.run import Run, homogeneous_candidate

STAGES = (
    "float training",
    "latency tables",
    "Bayesian Bits search",
    "homogeneous baselines",
    "free bits and knapsack",
    "selection",
    "TQT fine-tuning",
    "integer deployment",
    "report",
)


def plan(cfg: PipelineConfig, out: Path, source: str | None = None) -> str:
    """The plan of a run, after checking every value of the config and opening its data set (a user FILE.npz is
    read and checked against the network)."""
    source = source or f"config {cfg.name!r}"
    check_config(cfg, source)
    data = load_data(cfg, source, missing_ok=True)
    topo = network_for(cfg, None if isinstance(data, str) else data, source)
    n_bb = len(cfg.variants) * len(cfg.mus)
    name = cfg.network if topo.name == cfg.network else f"{topo.name} ({cfg.network})"
    lo, hi = topo.input_range
    lines = [
        f"run {cfg.name!r} → {out}",
        f"network {name} ({len(topo.layers)} layers, "
        f"{len(topo.layer_types())} layer types), data {cfg.data}, seed {cfg.seed}",
        f"input {topo.input_shape} range [{lo:g}, {hi:g}]"
        + (f"; data checked: {len(data.train_x)} train / {len(data.val_x)} val images" if _in_memory(data) else ""),
        f"1. float training: {_steps(cfg.float_steps)} (recipe {cfg.recipe})",
        f"2. latency tables: {', '.join(cfg.targets)} × {len(cfg.allowed_bits) ** 2} pairs",
        f"3. Bayesian Bits: variants {list(cfg.variants)} × μ {list(cfg.mus)} = {n_bb} runs of "
        f"{_steps(cfg.search_steps)}"
        + (
            f"; latency-aware: {len(cfg.targets)} targets × {list(cfg.latency_variants)} × μ {list(cfg.latency_mus)}"
            if cfg.latency_mus
            else ""
        ),
        "4. baselines 8b/8b and 4b/4b",
        f"5. free bits on every search result and 4b/4b per target; knapsack at {list(cfg.knapsack_budgets)} of 8b/8b",
        f"6. selection: margins {list(cfg.margins_pp)} pp and latency ≤ {cfg.latency_target_fraction:.0%} "
        "of 8b/8b per target",
        f"7. TQT fine-tuning: {_steps(cfg.finetune_steps)} per selected/baseline config",
        "8. integerize, DORY export, check, verify" + ("; run every network on GVSOC" if cfg.gvsoc else ""),
        "9. report.md, results.json, plots",
    ]
    if any(t.startswith("table:") for t in cfg.targets):  # measured tables may lack pairs
        lines.append(
            "a pair missing from (or failed in) a target's table is not deployable there: free bits never moves to "
            "it and moves layers off it; selection takes only deployable configs; a table that lacks pairs skips "
            "the latency-aware search and the knapsack on its target"
        )
    if isinstance(data, str):  # planned before the data was prepared: the run itself would stop here
        lines.append(f"warning: {data}")
    return "\n".join(lines)


def _in_memory(data) -> bool:
    return getattr(data, "train_x", None) is not None and not isinstance(data, str)


def _steps(n: int | None) -> str:
    return "the recipe's steps" if n is None else f"{n} steps"


def network_for(cfg: PipelineConfig, data, source: str):
    """The config's network with its input range, checked against the data (a one-line error naming the config)."""
    from fbpipe.run import network_of

    try:
        return network_of(cfg, data)
    except ValueError as exc:
        raise click.ClickException(f"{source}: data: {exc}") from None


def run_pipeline(cfg: PipelineConfig, out: Path, progress: bool = True, source: str | None = None) -> Path:
    source = source or f"config {cfg.name!r}"
    check_config(cfg, source)  # before anything is trained or written
    data = load_data(cfg, source)
    network_for(cfg, data, source)
    run = Run(cfg, out, data, progress=progress)
    n = len(STAGES)
    with run.stage(1, n, STAGES[0]):
        float_ckpt = stages.train_float(run, data)
    with run.stage(2, n, STAGES[1]):
        stages.profile(run)
    with run.stage(3, n, STAGES[2]):
        bb = stages.search(run, data, float_ckpt)
    with run.stage(4, n, STAGES[3]):
        homog = stages.homogeneous_candidates(run, data, float_ckpt)
    with run.stage(5, n, STAGES[4]):
        children = stages.apply_free_bits(run, data, bb + homog)
        children += stages.knapsack_candidates(run, data, bb)
    candidates = bb + homog + children
    with run.stage(6, n, STAGES[5]):
        selection = stages.choose(run, candidates)
    todo = stages.candidates_by_id(_todo_ids(run, homog, children, selection), candidates)
    with run.stage(7, n, STAGES[6]):
        finetuned = deliver.finetune(run, data, todo)
    with run.stage(8, n, STAGES[7]):
        deployed = deliver.deploy(run, data, finetuned)
        if cfg.gvsoc:
            gvsoc.run_all(run, deployed, finetuned, selection, {c.id: c.target for c in todo})
    with run.stage(9, n, STAGES[8]):
        path = write_results(run, data, candidates, selection, finetuned, deployed)
    return path


def _todo_ids(run: Run, homog, children, selection) -> list[str]:
    """What is fine-tuned and deployed: the baselines, 4b/4b's free-bits child per target (where it can run) and
    every selected config."""
    four = homogeneous_candidate(homog, 4)
    fb4 = [c.id for c in children if c.method == "free-bits" and four is not None and c.parent == four.id]
    ids = [c.id for c in homog] + stages.deployable_ids(run, children, fb4)
    return ids + [cid for picks in selection.values() for cid in picks.values()]


def write_results(run: Run, data, candidates, selection, finetuned, deployed) -> Path:
    cfg = run.cfg
    tables = run.tables()
    nets = {c.id: c.load(cfg.allowed_bits) for c in candidates}
    results = {
        "name": cfg.name,
        "network": cfg.network,
        "data": cfg.data,
        "seed": cfg.seed,
        "val_images": int(len(data.val_y)),
        "float_accuracy": read_json(run.out / "checkpoints" / "float.json")["val_accuracy"],
        "slugs": {t: cfg.target_slug(t) for t in cfg.targets},
        # Paths are relative to the run directory, so the run can be read and resumed from any cwd.
        "tables": {
            t: {
                "path": run.rel(run.table_path(t)),
                "sha256": tables[t].sha256(),
                **_source(tables[t]),
                **_unavailable(tables[t], cfg.allowed_bits),
            }
            for t in cfg.targets
        },  # fmt: skip
        "configs": {c.id: _config_record(c, nets[c.id], tables, run.rel(c.path)) for c in candidates},
        "selection": {t: picks for t, picks in selection.items()},
        "finetuned": finetuned,
        "deployed": deployed,
        "versions": report.versions(),
        "work": {"ran": list(run.records.ran), "reused": list(run.records.reused)},
    }
    results["hypervolume"] = report.hypervolumes(results, cfg.hypervolume_reference)
    results["hypervolume_reference"] = list(cfg.hypervolume_reference)
    results["table1"] = report.table_one(results)
    results["fb_effect"] = report.fb_effect(candidates, nets, tables)
    results["diffs"] = report.diffs_of(results, nets, tables)
    for target, slug in results["slugs"].items():
        report.pareto_plot(results, target, run.out / f"pareto_{slug}.png")
    import fb_profile

    fb_profile.plot_throughput(list(tables.values()), run.out / "fig1_throughput.png")
    results["timings"] = dict(run.timings)
    results["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    write_json(run.out / "results.json", results)
    report.write_report(results, run.out)
    click.echo(f"      wrote {run.out / 'report.md'}")
    return run.out / "report.md"


def _config_record(c, net: NetConfig, tables, path: str) -> dict:
    from fb_heuristic import deployable_latency

    return {
        "path": path,
        "sha256": net.sha256(),
        "method": net.provenance.get("method"),
        "seed": net.provenance.get("seed"),
        "parent": c.parent,
        "target": c.target,
        **({"bits": c.bits} if c.bits is not None else {}),  # homogeneous: how the report finds the baselines
        "val_accuracy": net.metrics["val_accuracy"],
        "bops": net.bops(),
        # None: a pair of the config is missing from (failed in) that target's table, so it cannot run there.
        "latency": {t: deployable_latency(net, table) for t, table in tables.items()},
        **(
            {"raised_unavailable": net.provenance["raised_unavailable"]}
            if "raised_unavailable" in net.provenance
            else {}
        ),
    }


def _unavailable(table, bits) -> dict:
    """``unavailable_pairs`` of a table that lacks some (a complete table's record stays as it was)."""
    n = stages.missing_pairs(table, bits)
    return {"unavailable_pairs": n} if n else {}


def _source(table) -> dict:
    """Where an imported table's latencies were measured: file, measured target, toolchain, tool commits."""
    prov = table.provenance
    if "source" not in prov:
        return {}
    inner = prov.get("source_provenance", {})
    tool = inner.get("toolchain", {}).get("version", "")
    what = f"`{prov['source']}` ({prov.get('source_target')}, {inner.get('backend', '?')}"
    return {"source": what + (f", {tool})" if tool else ")")}
