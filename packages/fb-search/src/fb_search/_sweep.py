"""Several searches of one network structure trained together: one compiled program over their stacked state.

Runs that differ only in mu and latency table (both traced inputs) share a structure; ``vmap`` over a leading
run axis trains them in parallel, one dispatch per step for all. Any other program rounds the last bits a little
differently from a run alone (XLA:CPU's fusions, batched kernels), and 300 steps of stochastic gates amplify
that: a gate that ends near its threshold can end on the other side (digitsnet, 5 mu: 2 of 5 configs differ
in one layer; putting each run's step side by side in one program instead of vmap also flipped one). On CPU
stacking is also slower than one run after the other (digitsnet, 2 cores: vmap 0.4-0.8x), so ``stacked="auto"``
picks ``vmap`` on a GPU/TPU only (``benchmarks/mu_sweep.py``).
"""

from __future__ import annotations

import functools
import os

import jax
import jax.numpy as jnp
from flax import nnx

from fb_search._data import Dataset
from fb_search._train import OptSpec, TrainLoop, _keyed_fn, _step_fn, make_optimizer, pure, write_back

STACKED = ("auto", "vmap", "off")


def resolve_stacked(stacked: str) -> str:
    """``vmap`` or ``off`` for a ``stacked`` option (``auto``: ``vmap`` on GPU/TPU, else ``off``)."""
    if stacked not in STACKED:
        raise ValueError(f"stacked: expected one of {', '.join(STACKED)}, got {stacked!r}")
    if stacked == "auto":
        return "vmap" if jax.default_backend() in ("gpu", "cuda", "rocm", "tpu") else "off"
    return stacked


@functools.lru_cache(maxsize=16)
def _stacked_step(graphdef, spec: OptSpec, steps: int, search: bool):
    """``(tx, step)`` over state with a leading run axis: batch, gate key and step shared, mu per run."""
    tx = make_optimizer(spec, steps)
    step = jax.vmap(_keyed_fn(_step_fn(graphdef, tx, search)), in_axes=(0, 0, 0, None, None, None, None, 0))
    return tx, jax.jit(step, donate_argnums=(0, 1, 2))


def train_stacked(
    models: list[nnx.Module],
    data: Dataset,
    spec: OptSpec,
    steps: int,
    seed: int,
    runs: tuple[tuple[float, str, str | os.PathLike | None], ...],
    desc: str = "search",
    log_every: int = 25,
) -> list[dict[str, float]]:
    """Search ``models[i]`` at mu ``runs[i][0]`` together (``vmap`` over a run axis), each with the batches and
    gate samples :func:`fb_search._train.train` gives it alone with ``seed``; ``runs[i]`` also names the run
    (``stage`` in its metrics.jsonl) and that file. Returns every run's last metrics.

    Raises:
      ValueError: the models differ in structure, or ``runs`` does not have one entry per model.
    """
    if len(models) != len(runs):
        raise ValueError(f"train_stacked: {len(models)} models but {len(runs)} runs")
    for model in models:
        model.train()
    splits = [nnx.split(model, nnx.Param, ...) for model in models]
    graphdef = splits[0][0]
    if any(g != graphdef for g, *_ in splits):
        raise ValueError("train_stacked: the models differ in structure (variant, objective or network)")
    params, rest = (jax.tree.map(lambda *a: jnp.stack(a), *[pure(sp[i]) for sp in splits]) for i in (1, 2))
    tx, step = _stacked_step(graphdef, spec, steps, True)
    state = (params, rest, jax.vmap(tx.init)(params))
    loop = TrainLoop(data, spec, seed, log_every, tuple(runs), desc, stacked=True)
    state, last = loop.run(step, state, 0, steps)
    write_back(models, state, stacked=True)
    return last
