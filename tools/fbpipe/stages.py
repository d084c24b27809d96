"""The pipeline stages. Each reads and writes files under ``runs/<name>/`` and returns what later stages need."""

from __future__ import annotations

from pathlib import Path

import click

import fb_profile
import fb_search
from fb_heuristic import deployable_latency, free_bits, homogeneous, knapsack, network_latency, select
from fb_schema import LatencyTable, NetConfig, Precision, all_pairs, read_json, write_json
from fbpipe.run import Candidate, Run, homogeneous_candidate, with_accuracy

KNAPSACK_BINS = 4096


def missing_pairs(table: LatencyTable, bits) -> int:
    """How many (layer type, pair) points ``table`` lacks: pairs its target cannot run (see ``unavailable``)."""
    pairs = all_pairs(tuple(sorted(set(bits))))
    return sum(
        not table.has(key, p)
        for key, lt in table.layer_types.items()
        for p in (pairs if lt.configurable else [Precision(b, None) for b in sorted(set(bits))])
    )


def skip_incomplete(run: Run, table: LatencyTable, target: str, what: str) -> bool:
    """True (and says so) when ``target``'s table lacks pairs: ``what`` needs a latency for every pair."""
    n = missing_pairs(table, run.cfg.allowed_bits)
    if n:
        click.echo(f"      {run.cfg.target_slug(target)}: {what} skipped (its table lacks {n} pairs)")
    return bool(n)


def train_float(run: Run, data) -> str:
    cfg = run.cfg
    marker = run.out / "checkpoints" / "float.json"
    inputs = {"network": cfg.network, "network_params": cfg.network_params, "data": cfg.data,
              "recipe": cfg.recipe, "seed": cfg.seed, "float_steps": cfg.float_steps}  # fmt: skip

    def load() -> str:
        info = read_json(marker)
        click.echo(f"      reusing float checkpoint ({info['val_accuracy']:.2%})")
        return str(run.path(info["checkpoint"]).absolute())

    def compute():
        ckpt = fb_search.train_float(run.topology, data, steps=cfg.float_steps, seed=cfg.seed, recipe=cfg.recipe,
                                     ckpt_dir=run.out / "checkpoints" / "float")  # fmt: skip
        acc = read_json(Path(ckpt) / "meta.json")["val_accuracy"]
        write_json(marker, {"checkpoint": run.rel(ckpt), "val_accuracy": acc})
        click.echo(f"      float accuracy {acc:.2%}")
        return str(ckpt), [marker, Path(ckpt)]

    steps = run.out / "checkpoints" / "float" / f"float-s{cfg.seed}-steps"
    return run.cached("float", inputs, compute, load, scratch=(steps,))


def _bb_run(run: Run, data, float_ckpt: str, cid: str, variant: str, mu: float, out_dir: Path,
            upstream: tuple, extra_inputs: dict, **extra) -> NetConfig:  # fmt: skip
    path = run.out / "configs" / f"{cid}.json"
    inputs = {**extra_inputs, "upstream": run.upstream("float", *upstream), "variant": variant, "mu": mu,
              "recipe": run.cfg.recipe, "search_steps": run.cfg.search_steps, "seed": run.cfg.seed}  # fmt: skip

    def compute():
        net = fb_search.search(run.topology, data, float_ckpt, variant=variant, mu=mu, steps=run.cfg.search_steps,
                               seed=run.cfg.seed, out_dir=out_dir, recipe=run.cfg.recipe, **extra)  # fmt: skip
        net.save(path)
        return net, [path, Path(net.provenance["checkpoint"])]

    net = run.cached(f"search/{cid}", inputs, compute, lambda: NetConfig.load(path, run.cfg.allowed_bits))
    click.echo(f"      {cid:<34} acc {net.metrics['val_accuracy']:.2%}  bops {net.bops():,}")
    return net


def search(run: Run, data, float_ckpt: str) -> list[Candidate]:
    """The Bayesian Bits μ sweep, both variants: one NetConfig (+ checkpoint) per (variant, μ).

    With ``latency_mus`` set, also the latency-aware search per target (expected latency from that target's table
    as the regularizer); those candidates belong to their target only.
    """
    out = []
    source = knapsack_source(run.cfg)
    for variant in run.cfg.variants:
        for mu in run.cfg.mus:
            cid = f"bb-{variant}-mu{mu:g}"
            # per-layer sensitivities: only the knapsack reads them, from one run (about 1 s each otherwise)
            sens = {"sensitivity": True} if (variant, mu) == source else {"sensitivity": False}
            net = _bb_run(run, data, float_ckpt, cid, variant, mu, run.out / "search", (), sens, **sens)
            path = run.out / "configs" / f"{cid}.json"
            out.append(
                Candidate(cid, path, net.provenance["checkpoint"], "bb", f"search/{cid}", variant=variant, mu=mu)
            )
    for target, table in run.tables().items() if run.cfg.latency_mus else ():
        if skip_incomplete(run, table, target, "latency-aware search"):
            continue
        slug = run.cfg.target_slug(target)
        for variant in run.cfg.latency_variants:
            for mu in run.cfg.latency_mus:
                cid = f"lat-{slug}-{variant}-mu{mu:g}"
                net = _bb_run(run, data, float_ckpt, cid, variant, mu, run.out / "search" / f"lat-{slug}",
                              (f"table/{slug}",), {"objective": "latency", "sensitivity": False},
                              objective="latency", table=table, sensitivity=False)  # fmt: skip
                path = run.out / "configs" / f"{cid}.json"
                out.append(Candidate(cid, path, net.provenance["checkpoint"], "latency-bb", f"search/{cid}", target,
                                     variant=variant, mu=mu))  # fmt: skip
    return out


def profile(run: Run) -> None:
    """One latency table per target over the network's layer types (fb-profile's cache makes re-runs cheap).

    A measured table may lack pairs (kernels that fail on the target, listed under its ``failed``): such a pair
    is not deployable on that target, and the later stages treat it so.
    """
    types = fb_profile.layer_types_of(run.topology)
    for target in run.cfg.targets:
        path = run.table_path(target)

        def compute(target=target, path=path):
            table = fb_profile.sweep(types, target=target, allowed_bits=run.cfg.allowed_bits,
                                     cache_dir=run.out / "tables" / ".cache", progress=run.progress)  # fmt: skip
            table.save(path)
            click.echo(f"      wrote {path.name} ({len(table.entries)} entries)")
            _say_unavailable(run, table)
            return None, [path]

        def load(path=path):
            _say_unavailable(run, LatencyTable.load(path), f"reusing {path.name}")

        inputs = {"target": target, "allowed_bits": run.cfg.allowed_bits, "layer_types": sorted(types)}
        run.cached(f"table/{run.cfg.target_slug(target)}", inputs, compute, load)


def _say_unavailable(run: Run, table: LatencyTable, head: str = "") -> None:
    n = missing_pairs(table, run.cfg.allowed_bits)
    if head:
        click.echo(f"      {head}")
    if n:
        f = table.failed[0] if table.failed else None
        first = f", first {f['layer_type']} ({f['b_in']}, {f['b_wt']})" if f else ""
        click.echo(f"      {table.target.name}: {n} pairs unavailable (failed there{first}): a config using one "
                   "is not deployable on this target")  # fmt: skip


def homogeneous_candidates(run: Run, data, float_ckpt: str) -> list[Candidate]:
    """8b/8b and 4b/4b from the float checkpoint (BN re-estimated), scored at their precisions."""
    base = NetConfig.homogeneous(run.topology, 8, 8, seed=run.cfg.seed, checkpoint=float_ckpt)
    out = []
    for bits in (8, 4):
        cid = f"{bits}b"
        path = run.out / "configs" / f"{cid}.json"

        def compute(bits=bits, path=path):
            net = homogeneous(base, bits) if bits != 8 else base
            net = with_accuracy(net, run.evaluate(net, float_ckpt, data), "bb-eval")
            net.save(path)
            return net, [path]

        inputs = {"upstream": run.upstream("float"), "bits": bits, "seed": run.cfg.seed}
        net = run.cached(f"homogeneous/{cid}", inputs, compute, lambda p=path: NetConfig.load(p, run.cfg.allowed_bits))
        click.echo(f"      {cid:<22} acc {net.metrics['val_accuracy']:.2%}")
        out.append(Candidate(cid, path, float_ckpt, "homogeneous", f"homogeneous/{cid}", bits=bits))
    return out


def apply_free_bits(run: Run, data, parents: list[Candidate]) -> list[Candidate]:
    """Free bits on every parent for every target; each child is scored with its parent's weights."""
    children = []
    for target, table in run.tables().items():
        slug = run.cfg.target_slug(target)
        # A complete table keeps the plain rule (and the records of earlier runs); else unavailable pairs are not
        # deployable: never moved to, and moved off to the fastest available more precise pair.
        mode = "unavailable" if missing_pairs(table, run.cfg.allowed_bits) else "error"
        for parent in parents:
            if parent.is_baseline or parent.target not in (None, target):
                continue  # nothing is more precise than 8b/8b; latency-aware configs belong to one target
            cid = f"fb-{slug}--{parent.id}"
            path = run.out / "configs" / f"{cid}.json"

            def compute(parent=parent, table=table, path=path, mode=mode):
                before = parent.load(run.cfg.allowed_bits)
                net = free_bits(before, table, run.cfg.allowed_bits, mode)
                if net.precisions() == before.precisions():
                    acc = before.metrics["val_accuracy"]  # unchanged: same network, same score
                else:
                    acc = run.evaluate(net, parent.checkpoint, data)
                net = with_accuracy(net, acc, "bb-eval")
                net.save(path)
                return net, [path]

            inputs = {"upstream": run.upstream(parent.key, f"table/{slug}"), "allowed_bits": run.cfg.allowed_bits}
            if mode != "error":
                inputs["on_missing"] = mode
            net = run.cached(f"free-bits/{cid}", inputs, compute,
                             lambda p=path: NetConfig.load(p, run.cfg.allowed_bits))  # fmt: skip
            before_lat = deployable_latency(parent.load(run.cfg.allowed_bits), table)
            after_lat = deployable_latency(net, table)
            if after_lat is None:
                lat = "not deployable (" + ", ".join(net.provenance.get("not_deployable", [])) + ")"
            elif before_lat is None:
                raised = len(net.provenance.get("raised_unavailable", {}))
                lat = f"{after_lat:,} cycles (parent not deployable; {raised} layers raised off unavailable pairs)"
            else:
                lat = f"lat {after_lat / before_lat - 1:+6.1%}"
            click.echo(f"      {cid:<40} {lat}  acc {net.metrics['val_accuracy']:.2%}")
            children.append(Candidate(cid, path, parent.checkpoint, "free-bits", f"free-bits/{cid}", target, parent.id))
    return children


def knapsack_source(cfg) -> tuple[str, float] | None:
    """(variant, μ) of the search whose per-layer sensitivities the knapsack uses: the first unregularized one
    (μ = 0, so 8-bit), which serves every target; None without knapsack budgets or a μ = 0 search."""
    if not cfg.knapsack_budgets:
        return None
    return next(((v, mu) for v in cfg.variants for mu in cfg.mus if mu == 0), None)


def knapsack_candidates(run: Run, data, bb: list[Candidate]) -> list[Candidate]:
    """The latency-budget optimizer per target, from the per-layer sensitivities of the unregularized (μ = 0, so
    8-bit) search (:func:`knapsack_source`)."""
    if not run.cfg.knapsack_budgets:
        return []
    where = knapsack_source(run.cfg)
    source = next((c for c in bb if c.method == "bb" and (c.variant, c.mu) == where), None)
    if source is None:
        click.echo("      no search with μ = 0 (mus) to take sensitivities from; skipping the knapsack optimizer")
        return []
    parent = source.load(run.cfg.allowed_bits)
    if "sensitivity" not in parent.metrics:
        click.echo(f"      {source.id} has no per-layer sensitivities; skipping the knapsack optimizer")
        return []
    out = []
    base = NetConfig.homogeneous(run.topology, 8, 8)
    for target, table in run.tables().items():
        if skip_incomplete(run, table, target, "knapsack"):
            continue
        slug = run.cfg.target_slug(target)
        for fraction in run.cfg.knapsack_budgets:
            cid = f"ks-{slug}-{fraction:g}"
            path = run.out / "configs" / f"{cid}.json"

            def compute(table=table, fraction=fraction, path=path, cid=cid):
                budget = int(fraction * network_latency(base, table))
                try:
                    net = knapsack(parent, table, budget, bins=KNAPSACK_BINS).config
                except ValueError as exc:
                    click.echo(f"      {cid}: {exc}")
                    path.unlink(missing_ok=True)
                    return None, []  # recorded as infeasible: no output
                net = with_accuracy(net, run.evaluate(net, source.checkpoint, data), "bb-eval")
                net.save(path)
                return net, [path]

            inputs = {"upstream": run.upstream(source.key, f"table/{slug}"), "fraction": fraction,
                      "bins": KNAPSACK_BINS}  # fmt: skip
            load = lambda p=path: NetConfig.load(p, run.cfg.allowed_bits) if p.exists() else None  # noqa: E731
            net = run.cached(f"knapsack/{cid}", inputs, compute, load)
            if net is None:
                continue
            lat = network_latency(net, table) / network_latency(base, table)
            click.echo(f"      {cid:<40} lat {lat - 1:+6.1%}  acc {net.metrics['val_accuracy']:.2%}")
            out.append(Candidate(cid, path, source.checkpoint, "knapsack", f"knapsack/{cid}", target, budget=fraction))
    return out


def choose(run: Run, candidates: list[Candidate]) -> dict[str, dict[str, str]]:
    """Per target: the fastest config within each accuracy margin of 8b/8b, and the best under a latency target.

    Only configs deployable on the target (every pair in its table) are considered; with 8b/8b not deployable
    there is no reference, and nothing is selected for that target.
    """
    nets = {c.id: c.load(run.cfg.allowed_bits) for c in candidates}
    base = homogeneous_candidate(candidates, 8)
    if base is None:
        raise ValueError("selection needs the 8b/8b candidate: every pick is compared with it")
    chosen: dict[str, dict[str, str]] = {}
    for target, table in run.tables().items():
        ok = [c for c in candidates if c.target in (None, target) and deployable_latency(nets[c.id], table) is not None]
        picks = {}
        if base not in ok:
            click.echo(f"      {run.cfg.target_slug(target)}: 8b/8b is not deployable there ({len(ok)} deployable "
                       "candidates); nothing selected")  # fmt: skip
            chosen[target] = picks
            continue
        pool = [c for c in ok if c is not base]
        for margin in run.cfg.margins_pp:
            picks[f"{margin:g}pp"] = _pick(nets, base, pool, table, max_accuracy_drop_pp=margin)
        budget = int(network_latency(nets[base.id], table) * run.cfg.latency_target_fraction)
        try:
            picks["latency_target"] = _pick(nets, base, pool, table, latency_target=budget)
        except ValueError as exc:
            click.echo(f"      {run.cfg.target_slug(target)}: {exc}")
        chosen[target] = picks
        names = ", ".join(f"{k}: {v}" for k, v in picks.items())
        click.echo(f"      {run.cfg.target_slug(target)}: {names}")
    return chosen


def _pick(nets: dict[str, NetConfig], base: Candidate, pool: list[Candidate], table, **criterion) -> str:
    """The id of the candidate ``select`` picks among ``pool`` and ``base`` (it returns one of the configs given)."""
    config = select([nets[c.id] for c in pool], table, nets[base.id], **criterion).config
    return next(c.id for c in (base, *pool) if nets[c.id] is config)


def deployable_ids(run: Run, candidates: list[Candidate], ids: list[str]) -> list[str]:
    """Those of ``ids`` that can run on their own target (a shared one: on every target); fine-tuning one that
    cannot run is wasted."""
    tables, index = run.tables(), {c.id: c for c in candidates}

    def ok(c: Candidate) -> bool:
        net = c.load(run.cfg.allowed_bits)
        return all(deployable_latency(net, t) is not None for k, t in tables.items() if c.target in (None, k))

    return [i for i in ids if ok(index[i])]


def candidates_by_id(ids: list[str], candidates: list[Candidate]) -> list[Candidate]:
    """The candidates named in ``ids``, each once, in order of first mention."""
    index = {c.id: c for c in candidates}
    return [index[i] for i in dict.fromkeys(ids)]
