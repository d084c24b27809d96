"""Training-step speed: our float and Bayesian Bits steps against PyTorch's float step on the same network.

Our steps are the jitted step ``fb_search.train`` runs (``fb_search._train._train_step_at``) with the MobileNetV1
ImageNet recipe's optimizers (SGD with momentum; BB: + Adam on the gates) and a 1000-class head; PyTorch's is
``benchmarks/torch_reference.py`` (float32 NCHW eager, SGD with momentum, 2 threads), timed only when torch is
installed, in a child process of its own. Random inputs; the steppers take turns in blocks of steps (the first
step of each block untimed), medians over the rounds (the machine is shared: only ratios measured in one run mean
anything).

    .venv/bin/python benchmarks/bb_overhead.py --model mobilenetv1-0.25@128 --batch 32 [--repeats 10]

Prints each step in ms and as a ratio to PyTorch's float step, and BB/float. Goals: float <= 1.2x and BB <= 1.45x
PyTorch's float step.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import time
from pathlib import Path

import click
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import torch_reference  # noqa: E402

from fb_schema.topologies import digitsnet, mobilenetv1  # noqa: E402
from fb_search import QNet  # noqa: E402
from fb_search._train import _train_step_at, pure  # noqa: E402
from fb_search.recipes import get_recipe  # noqa: E402

MODELS = {
    "digitsnet": (digitsnet, {}),
    "mobilenetv1-0.25@128": (mobilenetv1, {"width": 0.25, "resolution": 128}),
    "mobilenetv1-0.75@224": (mobilenetv1, {"width": 0.75, "resolution": 224}),
}


def jax_stepper(topology, mode: str, batch: int, dw_impl: str | None = None, dtype: str = "float32",
                fused: bool | None = None):  # fmt: skip
    """One step of ``fb_search.train``'s jitted step (float or BB search) on random data; returns its seconds.
    ``fused``: the fused kernels on or off (None: the recipe's, on)."""
    recipe = get_recipe("mnv1_imagenet")
    extra = {} if dtype == "float32" else {"compute_dtype": dtype}
    extra |= {} if dw_impl is None else {"dw_impl": dw_impl}
    base = recipe.SEARCH if mode == "bb" else recipe.FLOAT
    spec = base.__class__(**{**base.__dict__, "batch_size": batch})
    fused = recipe.FUSED_KERNELS if fused is None else fused
    model = QNet(topology, mode, bb=recipe.BB, fused_kernels=fused, rngs=nnx.Rngs(0), **extra)
    run = timer(*step_and_inputs(model, topology, spec, batch))
    run(0)  # compile
    return run


def step_and_inputs(model, topology, spec, batch: int):
    """``fb_search.train``'s jitted step for ``model`` (plain-array state), its state and one random batch."""
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = pure(params), pure(rest)  # the step takes plain-array trees
    tx, step = _train_step_at(graphdef, spec, 1000, model.mode == "bb")
    h, w, c = topology.input_shape
    x = jax.random.uniform(jax.random.key(0), (batch, h, w, c))
    y = jax.random.randint(jax.random.key(1), (batch,), 0, topology.num_classes)
    return step, [params, rest, tx.init(params)], x, y, jnp.float32(0.01)


def timer(step, state: list, x, y, mu):
    """``run(i)``: step number ``i`` (its gate key folded in by the step) on the batch, blocking; returns its wall
    seconds."""
    key = jax.random.key(0)

    def run(i: int) -> float:
        t = time.perf_counter()
        out = step(*state, x, y, key, np.int32(i), mu)
        jax.block_until_ready(out[0])
        state[:3] = out[:3]
        return time.perf_counter() - t

    return run


def timed_block(run):
    """``block(start, n)``: steps ``start .. start + n - 1`` of ``run`` (``run(i)`` returns its wall seconds);
    ``[(wall s, process CPU s), ...]``. Our steppers and, in its own process, PyTorch's."""

    def block(start: int, n: int) -> list[tuple[float, float]]:
        out = []
        for i in range(start, start + n):
            c = time.process_time()
            w = run(i)
            out.append((w, time.process_time() - c))
        return out

    return block


def _torch_worker(conn, width: float, resolution: int, batch: int) -> None:
    """The child process's loop: build PyTorch's step, then run blocks of steps on request until sent None."""
    block = timed_block(torch_reference.make_step(width, resolution, batch))
    conn.send("ready")
    while (n := conn.recv()) is not None:
        conn.send(block(0, n))


@contextlib.contextmanager
def torch_block(width: float, resolution: int, batch: int):
    """PyTorch's float step in a child process of its own, as a ``block(start, n)`` like :func:`timed_block`.

    Its own process, because two runtimes' thread pools in one process take the cores from each other: XLA's
    and OpenMP's workers keep spinning after a step, so PyTorch's 0.25@128 step measured beside ours in one process
    took 129.6 ms against 96.6 ms alone (``benchmarks/README.md``). The child's CPU time is its own.
    """
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=_torch_worker, args=(child, width, resolution, batch), daemon=True)
    proc.start()
    child.close()  # the child's end lives in the child only: its exit is then an EOF here
    try:
        try:
            ready = parent.poll(600) and parent.recv() == "ready"
        except EOFError:  # the child died before it was ready
            ready = False
        if not ready:
            raise click.ClickException("the PyTorch reference process did not start (see its error above)")

        def block(start: int, n: int) -> list[tuple[float, float]]:
            parent.send(n)
            return parent.recv()

        yield block
    finally:
        with contextlib.suppress(OSError):  # the child may have gone already
            parent.send(None)
        proc.join(30)


def interleave(blocks: dict, repeats: int, block: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall seconds and median CPU seconds per step of each stepper, over ``repeats`` rounds.

    Each round runs every stepper for ``block + 1`` consecutive steps and drops the first: it pays for the caches
    and thread pools the previous stepper left cold. CPU time is the stepper's process's (all its threads); on an
    idle machine with 2 threads it is up to twice the wall time.
    """
    wall = {k: [] for k in blocks}
    cpu = {k: [] for k in blocks}
    for r in range(repeats):
        for k, run in blocks.items():
            for w, c in run(1 + r * (block + 1), block + 1)[1:]:
                wall[k].append(w)
                cpu[k].append(c)
    return {k: float(np.median(v)) for k, v in wall.items()}, {k: float(np.median(v)) for k, v in cpu.items()}


def _count_option(name: str, default: int, help_text: str):
    """A count option of at least 1 (0 rounds or steps would leave medians of nothing)."""
    return click.option(name, default=default, show_default=True, type=click.IntRange(1), help=help_text)


@click.command()
@click.option("--model", "models", multiple=True, type=click.Choice(list(MODELS)), default=["mobilenetv1-0.25@128"])
@click.option("--batch", default=32, show_default=True)
@_count_option("--repeats", 10, "Rounds; each times --block steps of every stepper.")
@_count_option("--block", 3, "Steps timed per stepper and round (after one untimed).")
@click.option("--no-torch", is_flag=True, help="Leave out PyTorch's float step even if torch is installed.")
@click.option("--plain", is_flag=True, help="Also time both steps with the plain XLA kernels (fused_kernels=False).")
def main(models: tuple[str, ...], batch: int, repeats: int, block: int, no_torch: bool, plain: bool) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", str(torch_reference.THREADS))  # inherited by the PyTorch process
    with_torch = torch_reference.available() and not no_torch
    for name in models:
        fn, params = MODELS[name]
        topology = fn(**params, num_classes=1000 if name != "digitsnet" else 10)
        with contextlib.ExitStack() as stack:
            blocks = {"float": timed_block(jax_stepper(topology, "float", batch)),
                      "bb": timed_block(jax_stepper(topology, "bb", batch))}  # fmt: skip
            if plain:
                for mode in ("float", "bb"):
                    blocks[f"{mode} plain"] = timed_block(jax_stepper(topology, mode, batch, fused=False))
            if with_torch and name != "digitsnet":
                blocks["torch float"] = stack.enter_context(torch_block(params["width"], params["resolution"], batch))
            load = os.getloadavg()[0]
            med, cpu = interleave(blocks, repeats, block)
        ref, ref_cpu = med.get("torch float"), cpu.get("torch float")
        policy = os.environ.get("OMP_WAIT_POLICY", "unset")
        click.echo(
            f"{name} batch {batch}, median of {repeats}x{block} steps in blocks interleaved (wall; CPU time of the "
            f"stepper's process), load average {load:.1f} before, {os.getloadavg()[0]:.1f} after, "
            f"{os.cpu_count()} CPUs" + (f", PyTorch in its own process (OMP_WAIT_POLICY {policy})" if ref else "") + ":"
        )
        for k, t in med.items():
            vs = f"  {t / ref:5.2f}x PyTorch float" if ref else ""
            vs_cpu = f"  {cpu[k] / ref_cpu:5.2f}x" if ref_cpu else ""
            click.echo(f"  {k:<12} {t * 1e3:8.1f} ms{vs};  CPU {cpu[k] * 1e3:8.1f} ms{vs_cpu}")
        click.echo(f"ratio BB/float {name}: {med['bb'] / med['float']:.2f}")
        if plain:
            speedup = {mode: med[f"{mode} plain"] / med[mode] for mode in ("float", "bb")}
            click.echo(f"fused kernels' speed-up {name}: float {speedup['float']:.2f}x, bb {speedup['bb']:.2f}x")
        if not ref:
            click.echo("  (PyTorch float step not timed: pip install -r benchmarks/requirements-peer.txt)")


if __name__ == "__main__":
    main()
