"""Training loops: one jitted step per (model structure, optimizer), shared by float training, the Bayesian
Bits search (loss = CE + mu * regularizer, mu a traced scalar so a mu sweep compiles once) and TQT fine-tuning.

Parameters are grouped by name: ``phi`` (BB gates), ``log_t`` (TQT thresholds), everything else ``weights``.
Each group has its own optax transform (``optax.multi_transform``); frozen groups get ``set_to_zero`` so that
stateful optimizers cannot move them.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from fb_search._data import Dataset
from fb_search._distributed import (
    data_mesh,
    is_main_process,
    replicate,
    restore_train_state,
    save_train_state,
    shard_batch,
)
from fb_search._progress import progress
from fb_search.quant import FloatQuant, tqt_grad_normalizer


@dataclass(frozen=True)
class OptSpec:
    """Optimizer recipe. ``kind`` adam|sgd for the weights; gates always use Adam(``gate_lr``) at a constant rate
    (QuantLab keeps the gate optimizer outside the LR schedule); ``log_t`` gets TQT's normalizer + the weights'
    optimizer. ``schedule``: ``constant``, ``cosine`` or ``step`` (x0.1 at 4/11 and 7/11 of training, QuantLab's
    HandScheduler scaled to the step count)."""

    kind: str = "adam"
    lr: float = 2e-3
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: str = "cosine"
    gate_lr: float = 1e-2
    batch_size: int = 64
    frozen: tuple[str, ...] = ()


def param_labels(params, frozen: tuple[str, ...] = ()):
    """The optimizer group of every parameter leaf, by its variable name."""

    def label(path, _):
        name = [str(getattr(k, "key", "")) for k in path if hasattr(k, "key")][-1]
        group = {"phi": "gates", "log_t": "log_t"}.get(name, "weights")
        return "frozen" if group in frozen else group

    return jax.tree_util.tree_map_with_path(label, params)


def _schedule(spec: OptSpec, steps: int):
    if spec.schedule == "cosine":
        return optax.cosine_decay_schedule(spec.lr, max(steps, 1))
    if spec.schedule == "step":
        return optax.piecewise_constant_schedule(spec.lr, {int(steps * 4 / 11): 0.1, int(steps * 7 / 11): 0.1})
    return optax.constant_schedule(spec.lr)


def make_optimizer(spec: OptSpec, steps: int) -> optax.GradientTransformation:
    """``multi_transform`` over the groups weights / gates / log_t / frozen."""
    sched = _schedule(spec, steps)

    def weights():
        if spec.kind == "adam":
            return optax.adamw(sched, weight_decay=spec.weight_decay)
        if spec.kind == "sgd":
            return optax.chain(optax.add_decayed_weights(spec.weight_decay), optax.sgd(sched, momentum=spec.momentum))
        raise ValueError(f"optimizer kind: expected adam or sgd, got {spec.kind!r}")

    return optax.multi_transform(
        {
            "weights": weights(),
            "gates": optax.adam(spec.gate_lr),
            "log_t": optax.chain(tqt_grad_normalizer(), weights()),
            "frozen": optax.set_to_zero(),
        },
        functools.partial(param_labels, frozen=spec.frozen),
    )


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def pure(state):
    """A ``nnx.State`` as a plain nested dict of arrays (cheap to pass through ``jit``); other trees unchanged."""
    return nnx.to_pure_dict(state) if isinstance(state, nnx.State) else state


def _step_fn(graphdef, tx: optax.GradientTransformation, search: bool):
    """One training step on plain-array trees: ``(params, rest, opt_state, x, y, key, mu) -> (..., metrics)``."""

    def step(params, rest, opt_state, x, y, key, mu):
        def loss_fn(params, rest):
            # Rebuilt inside this trace from plain arrays, so BatchNorm may update its statistics.
            model = nnx.merge(graphdef, params, rest)
            logits = model(x, key)
            ce = cross_entropy(logits, y)
            reg = model.regularizer() if search else jnp.zeros(())
            ebits = model.expected_bits() if search else jnp.zeros(())
            return ce + mu * reg, (logits, pure(nnx.state(model, nnx.Not(nnx.Param))), ce, reg, ebits)

        (loss, (logits, rest, ce, reg, ebits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return params, rest, opt_state, {"loss": loss, "ce": ce, "reg": reg, "acc": acc, "ebits": ebits}

    return step


@functools.lru_cache(maxsize=16)
def _train_step(graphdef, spec: OptSpec, steps: int, search: bool):
    """``(tx, step)``: the optimizer and one jitted step over plain-array trees (see :func:`pure`)."""
    tx = make_optimizer(spec, steps)
    return tx, jax.jit(_step_fn(graphdef, tx, search), donate_argnums=(0, 1, 2))


def _keyed_fn(step):
    """``step`` with its gate key ``fold_in(key, s)`` computed inside the program (no eager op per step)."""

    def keyed(params, rest, opt_state, x, y, key, s, mu):
        return step(params, rest, opt_state, x, y, jax.random.fold_in(key, s), mu)

    return keyed


@functools.lru_cache(maxsize=16)
def _train_step_at(graphdef, spec: OptSpec, steps: int, search: bool):
    """``(tx, step)`` like :func:`_train_step`, the step taking the base key and the step number.

    One dispatch per step: XLA:CPU runs a loop of steps inside one program (``fori_loop``/``scan``) about 5x
    slower than the same steps dispatched one by one (digitsnet, measured), so the loop stays on the host.
    """
    tx = make_optimizer(spec, steps)
    return tx, jax.jit(_keyed_fn(_step_fn(graphdef, tx, search)), donate_argnums=(0, 1, 2))


def train(
    model: nnx.Module,
    data: Dataset,
    spec: OptSpec,
    steps: int,
    seed: int,
    mu: float = 0.0,
    search: bool = False,
    log_path: str | os.PathLike | None = None,
    desc: str = "train",
    log_every: int = 25,
    ckpt_dir: str | os.PathLike | None = None,
    ckpt_every: int = 0,
    stop_at: int | None = None,
) -> dict[str, float]:
    """Train ``model`` in place for ``steps`` steps, data-parallel over all devices; returns the last metrics.

    A progress bar shows loss, accuracy and (search) expected bits; metrics go to ``log_path`` as JSON lines
    (process 0 only). With ``ckpt_dir`` the state is saved every ``ckpt_every`` steps and a run resumes exactly
    from the latest one there (batches and gate samples depend only on ``(seed, step)``). ``stop_at`` ends the
    run early after that step (an interruption), leaving a checkpoint.
    """
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = pure(params), pure(rest)
    tx, step = _train_step_at(graphdef, spec, steps, search)
    state = (params, rest, tx.init(params))
    start = 0
    if ckpt_dir is not None:
        restored = restore_train_state(ckpt_dir, state)
        if restored is not None:
            start, state = restored
    end = steps if stop_at is None else min(stop_at, steps)
    ckpt = (ckpt_dir, ckpt_every) if ckpt_dir is not None and ckpt_every else None
    loop = TrainLoop(data, spec, seed, log_every, ((mu, desc, log_path),), desc, ckpt)
    state, last = loop.run(step, state, start, end)
    write_back([model], state)
    return last[0]


def write_back(models: list[nnx.Module], state, stacked: bool = False) -> None:
    """Copy trained ``(params, rest, ...)`` into ``models`` (row ``i`` of a stacked state into ``models[i]``), as
    ordinary single-device arrays so that eager code (calibration, BN re-estimation) can update them."""
    local = jax.tree.map(lambda a: np.asarray(jax.device_get(a)), tuple(state[:2]))
    for i, model in enumerate(models):
        row = jax.tree.map(lambda a, i=i: jnp.asarray(a[i] if stacked else a), local)
        nnx.update(model, *row)
        model.eval()


class TrainLoop:
    """The host side of training: one step dispatched per batch without waiting for it, metrics read (a host
    sync) only at log points and one log interval late (the next steps are already queued), the progress bar,
    metrics.jsonl and checkpoints.

    Args:
      runs: ``(mu, stage name, metrics.jsonl path or None)`` of every trained run; with ``stacked`` the state,
        mu and metrics have a leading run axis (a stacked sweep).
      desc: the progress bar's label.
      ckpt: ``(directory, every)`` for step checkpoints, or None.
    """

    def __init__(self, data: Dataset, spec: OptSpec, seed: int, log_every: int, runs: tuple, desc: str,
                 ckpt: tuple | None = None, stacked: bool = False):  # fmt: skip
        self.data, self.spec, self.seed, self.log_every, self.runs = data, spec, seed, log_every, runs
        self.desc, self.ckpt, self.stacked = desc, ckpt, stacked
        self.mesh = data_mesh()
        self.last: list[dict[str, float]] = [{} for _ in runs]

    def pieces(self, start: int, end: int):
        """``(a, b)`` step ranges that end at every log and checkpoint point."""
        every = [self.log_every] + ([self.ckpt[1]] if self.ckpt else [])
        s = start
        while s < end:
            b = min([end] + [(s // e + 1) * e for e in every])
            yield s, b
            s = b

    def run(self, step, state, start: int, end: int):
        """Steps ``start .. end-1`` through ``step``; returns the final state and the last metrics per run."""
        mus = [mu for mu, _, _ in self.runs]
        mu = jnp.asarray(mus if self.stacked else mus[0], jnp.float32)
        state, mu = replicate((state, mu), self.mesh)
        key = jax.random.key(self.seed)  # left uncommitted: device_put cannot place a key on another host's devices
        main = is_main_process()
        paths = {str(p) for _, _, p in self.runs if p is not None} if main else set()
        log = {p: open(p, "a") for p in sorted(paths)}  # noqa: SIM115 (closed below)
        bar = progress(total=end - start, desc=self.desc, enabled=main)
        batches = self.data.batches(end, self.spec.batch_size, self.seed, start)
        pending = None
        try:
            for a, b in self.pieces(start, end):
                for s in range(a, b):
                    x, y = self._place(next(batches))
                    *state, m = step(*state, x, y, key, np.int32(s), mu)
                self._flush(pending, bar, log, end)  # the previous piece's metrics, while this one runs
                pending = (a, b, m)
                if self.ckpt is not None and (b % self.ckpt[1] == 0 or b == end):
                    self._flush(pending, bar, log, end)
                    pending = None
                    save_train_state(self.ckpt[0], b, tuple(state))
            self._flush(pending, bar, log, end)
        finally:
            bar.close()
            for f in log.values():
                f.close()
        return tuple(state), self.last

    def _place(self, batch):
        """A batch as the step takes it: numpy on one device (jit copies it), else sharded over the mesh."""
        arrays = tuple(np.asarray(a) for a in batch)
        return arrays if self.mesh.size == 1 and jax.process_count() == 1 else shard_batch(arrays, self.mesh)

    def _flush(self, pending, bar, log, end: int) -> None:
        if pending is None:
            return
        a, b, m = pending
        if b % self.log_every and b != end:
            bar.update(b - a)
            return
        host = {k: np.atleast_1d(np.asarray(v)) for k, v in m.items()}
        self.last = [{k: float(v[i]) for k, v in host.items()} for i in range(len(self.runs))]
        mean = {k: float(np.mean(v)) for k, v in host.items()}
        bar.set_postfix(loss=f"{mean['loss']:.3f}", acc=f"{mean['acc']:.3f}", bits=f"{mean['ebits']:.2f}")
        bar.update(b - a)
        for (mu, name, path), metrics in zip(self.runs, self.last):
            if str(path) in log:
                log[str(path)].write(json.dumps({"stage": name, "step": b, "mu": mu, **metrics}) + "\n")


@functools.lru_cache(maxsize=16)
def _eval_step(graphdef):
    @jax.jit
    def logits_fn(state, x):
        return nnx.merge(graphdef, state)(x, None)

    return logits_fn


def predict(model: nnx.Module, x: np.ndarray, batch_size: int = 540) -> np.ndarray:
    """Deterministic logits (eval mode: running BN statistics, test-time gates)."""
    model.eval()
    graphdef, state = nnx.split(model)
    fn, state = _eval_step(graphdef), pure(state)  # plain arrays: the structure layer_sensitivity passes too
    return np.concatenate([np.asarray(fn(state, x[i : i + batch_size])) for i in range(0, len(x), batch_size)])


def accuracy(model: nnx.Module, x: np.ndarray, y: np.ndarray) -> tuple[float, int]:
    """(accuracy, number of errors) on ``(x, y)``."""
    wrong = int(np.sum(np.argmax(predict(model, x), -1) != y))
    return 1.0 - wrong / len(y), wrong


def val_accuracy(model: nnx.Module, data, batch_size: int = 540) -> tuple[float, int]:
    """(accuracy, errors) over the validation split of ``data``, streamed in batches."""
    wrong = total = 0
    for x, y in data.val_batches(batch_size):
        wrong += int(np.sum(np.argmax(predict(model, np.asarray(x), batch_size), -1) != np.asarray(y)))
        total += len(y)
    return 1.0 - wrong / total, wrong


def reestimate_bn(model: nnx.Module, x: np.ndarray, batch_size: int = 2048) -> None:
    """Replace every BatchNorm's running statistics by their exact average over ``x`` under the current
    quantization (eval-mode quantizers, batch statistics), as before evaluating or fine-tuning a config."""
    model.eval()
    model.set_attributes(use_running_average=False, raise_if_not_found=False)
    chunks = [x[i : i + batch_size] for i in range(0, len(x), batch_size)]
    bns = [m for _, m in nnx.iter_modules(model) if isinstance(m, nnx.BatchNorm)]
    momenta = [bn.momentum for bn in bns]  # restored afterwards: each layer keeps the momentum it was built with
    sums = None
    for xb in chunks:
        for bn in bns:
            bn.momentum = 0.0  # the running stats become this batch's
        _forward_in_place(model, xb)
        stats = [(np.asarray(bn.mean[...]), np.asarray(bn.var[...])) for bn in bns]
        w = len(xb) / len(x)
        sums = (
            [(m * w, v * w) for m, v in stats]
            if sums is None
            else [(a + m * w, b + v * w) for (a, b), (m, v) in zip(sums, stats)]
        )
    for bn, (m, v), momentum in zip(bns, sums, momenta):
        bn.mean[...], bn.var[...] = jnp.asarray(m), jnp.asarray(v)
        bn.momentum = momentum
    model.eval()


@nnx.jit
def _forward_in_place(model: nnx.Module, x: jax.Array) -> None:
    """One compiled forward pass that keeps what it writes into ``model`` (BN statistics, calibrated thresholds)."""
    model(x, None)


def calibrate(model: nnx.Module, x: np.ndarray) -> None:
    """Set every activation threshold of a float model to the 99.9th percentile of its |input| on ``x``.

    The input quantizer keeps the topology's input range (``calibrate_skip``)."""
    model.eval()
    quants = [
        m
        for _, m in nnx.iter_modules(model)
        if isinstance(m, FloatQuant) and not m.is_weight and not getattr(m, "calibrate_skip", False)
    ]
    for q in quants:
        q.calibrating = True
    try:
        _forward_in_place(model, jnp.asarray(x))  # eagerly, each quantile would compile a program of its own
    finally:
        for q in quants:
            q.calibrating = False
