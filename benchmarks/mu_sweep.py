"""Training time of a digits mu sweep: the runs one after the other against stacked (``vmap``).

Trains float digitsnet once, then the Bayesian Bits orig variant at each mu, in one process: sequentially
(``fb_search.train``, one shared compilation) and stacked (``fb_search._sweep.train_stacked``). Prints each mode's
training seconds (first step's compilation included), its ratio to the sequential time, and whether its configs
equal the sequential ones. The machine is shared: only ratios measured in one run mean anything.

    .venv/bin/python benchmarks/mu_sweep.py [--mus 0,0.01,0.03,0.1,0.3]
"""

from __future__ import annotations

import tempfile
import time

import click

import fb_search
from fb_search._api import SearchRun, _search_model
from fb_search._sweep import train_stacked
from fb_search.recipes import get_recipe


def _models(topology, r, mus, ckpt):
    return [_search_model(topology, r, SearchRun("orig", mu, tempfile.mkdtemp()), 0, ckpt) for mu in mus]


def _configs(models) -> list:
    return [tuple(str(p) for p in m.precisions().values()) for m in models]


@click.command()
@click.option("--mus", default="0,0.01,0.03,0.1,0.3", show_default=True)
def main(mus: str) -> None:
    mus = tuple(float(m) for m in mus.split(","))
    data, r = fb_search.load_digits_data(), get_recipe("digits")
    ckpt = fb_search.train_float("digitsnet", data, None, 0, tempfile.mkdtemp())
    topology = fb_search.topology_of(ckpt)
    models = _models(topology, r, mus, ckpt)
    t = time.perf_counter()
    for model, mu in zip(models, mus):
        fb_search.train(model, data, r.SEARCH, r.SEARCH_STEPS, 0, mu=mu, search=True, desc=f"mu={mu:g}")
    sequential, reference = time.perf_counter() - t, _configs(models)
    print(f"sequential: {sequential:.1f} s for {len(mus)} runs")
    for how in ("vmap",):
        models = _models(topology, r, mus, ckpt)
        t = time.perf_counter()
        runs = tuple((mu, f"mu={mu:g}", None) for mu in mus)
        train_stacked(models, data, r.SEARCH, r.SEARCH_STEPS, 0, runs, how)
        seconds = time.perf_counter() - t
        same = [a == b for a, b in zip(_configs(models), reference)]
        print(f"{how}: {seconds:.1f} s = {sequential / seconds:.2f}x the sequential speed; "
              f"configs equal to sequential: {sum(same)}/{len(same)}")  # fmt: skip


if __name__ == "__main__":
    main()
