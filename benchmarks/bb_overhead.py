"""Bayesian Bits training-step overhead: BB step / float step, and grouped / taps depthwise step.

Same net, batch and jit for both members of a pair; the steps are interleaved in one process and the median of
the repeats is reported (this machine's speed drifts, so only interleaved ratios are meaningful).

    .venv/bin/python benchmarks/bb_overhead.py [--repeats 20]

Prints ``ratio BB/float <model>: X.XX`` for digitsnet and MobileNetV1-0.25@128, and
``ratio grouped/taps <model>: X.XX``. Goal: BB/float <= 1.3.
"""

from __future__ import annotations

import time

import click
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fb_schema.topologies import digitsnet, mobilenetv1
from fb_search import OptSpec, QNet
from fb_search._train import _train_step

MODELS = {
    "digitsnet": (digitsnet, {}, 64),
    "mobilenetv1-0.25@128": (mobilenetv1, {"width": 0.25, "resolution": 128}, 16),
}


def _stepper(topology, mode: str, dw_impl: str, batch: int):
    model = QNet(topology, mode, dw_impl=dw_impl, rngs=nnx.Rngs(0))
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    tx, step = _train_step(graphdef, OptSpec(batch_size=batch), 1000, mode == "bb")
    state = [params, rest, tx.init(params)]
    h, w, c = topology.input_shape
    x = jax.random.uniform(jax.random.key(0), (batch, h, w, c))
    y = jnp.zeros((batch,), jnp.int32)
    mu = jnp.float32(0.01)

    def run(i: int) -> float:
        t = time.perf_counter()
        out = step(*state, x, y, jax.random.key(i), mu)
        jax.block_until_ready(out[0])
        state[:3] = out[:3]
        return time.perf_counter() - t

    run(0)  # compile
    return run


def compare(a, b, repeats: int) -> float:
    ta, tb = [], []
    for i in range(repeats):
        ta.append(a(i + 1))
        tb.append(b(i + 1))
    return float(np.median(ta) / np.median(tb)), float(np.median(ta)), float(np.median(tb))


@click.command()
@click.option("--repeats", default=20, show_default=True)
@click.option("--model", "models", multiple=True, type=click.Choice(list(MODELS)), default=list(MODELS))
def main(repeats: int, models: tuple[str, ...]) -> None:
    for name in models:
        fn, params, batch = MODELS[name]
        topology = fn(**params, num_classes=10)
        ratio, tb, tf = compare(
            _stepper(topology, "bb", "taps", batch), _stepper(topology, "float", "taps", batch), repeats
        )
        click.echo(f"ratio BB/float {name}: {ratio:.2f}  ({tb * 1e3:.1f} / {tf * 1e3:.1f} ms, batch {batch})")
        ratio, tg, tt = compare(
            _stepper(topology, "float", "grouped", batch), _stepper(topology, "float", "taps", batch), repeats
        )
        click.echo(f"ratio grouped/taps {name}: {ratio:.2f}  ({tg * 1e3:.1f} / {tt * 1e3:.1f} ms, batch {batch})")


if __name__ == "__main__":
    main()
