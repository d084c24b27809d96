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


@functools.lru_cache(maxsize=16)
def _train_step(graphdef, spec: OptSpec, steps: int, search: bool):
    tx = make_optimizer(spec, steps)

    @functools.partial(jax.jit, donate_argnums=(0, 1, 2))
    def step(params, rest, opt_state, x, y, key, mu):
        def loss_fn(params, rest):
            # Rebuild the non-differentiated variables inside this trace so BatchNorm may update them.
            model = nnx.merge(graphdef, params, jax.tree.map(lambda v: v, rest))
            logits = model(x, key)
            ce = cross_entropy(logits, y)
            reg = model.regularizer() if search else jnp.zeros(())
            ebits = model.expected_bits() if search else jnp.zeros(())
            return ce + mu * reg, (logits, nnx.state(model, nnx.Not(nnx.Param)), ce, reg, ebits)

        (loss, (logits, rest, ce, reg, ebits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, rest)
        updates, opt_state = tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        acc = jnp.mean(jnp.argmax(logits, -1) == y)
        return params, rest, opt_state, {"loss": loss, "ce": ce, "reg": reg, "acc": acc, "ebits": ebits}

    return tx, step


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
    tx, step = _train_step(graphdef, spec, steps, search)
    opt_state = tx.init(params)
    start = 0
    if ckpt_dir is not None:
        restored = restore_train_state(ckpt_dir, (params, rest, opt_state))
        if restored is not None:
            start, (params, rest, opt_state) = restored
    mesh = data_mesh()
    params, rest, opt_state = replicate((params, rest, opt_state), mesh)
    key = jax.random.key(seed)
    mu_arr = replicate(jnp.asarray(mu, jnp.float32), mesh)
    last: dict[str, float] = {}
    main = is_main_process()
    log = open(log_path, "a") if log_path is not None and main else None  # noqa: SIM115 (closed below)
    end = steps if stop_at is None else min(stop_at, steps)
    try:
        bar = progress(range(start, end), desc=desc, enabled=main)
        batches = data.batches(end, spec.batch_size, seed, start)
        for s, batch in zip(bar, batches):
            x, y = shard_batch(tuple(np.asarray(a) for a in batch), mesh)
            params, rest, opt_state, m = step(params, rest, opt_state, x, y, jax.random.fold_in(key, s), mu_arr)
            if (s + 1) % log_every == 0 or s + 1 == end:
                last = {k: float(v) for k, v in m.items()}
                bar.set_postfix(loss=f"{last['loss']:.3f}", acc=f"{last['acc']:.3f}", bits=f"{last['ebits']:.2f}")
                if log is not None:
                    log.write(json.dumps({"stage": desc, "step": s + 1, "mu": mu, **last}) + "\n")
            if ckpt_dir is not None and ckpt_every and ((s + 1) % ckpt_every == 0 or s + 1 == end):
                save_train_state(ckpt_dir, s + 1, (params, rest, opt_state))
    finally:
        if log is not None:
            log.close()
    # Back to ordinary single-device arrays so that eager code (calibration, BN re-estimation) can update them.
    local = jax.tree.map(lambda a: jnp.asarray(jax.device_get(a)), (params, rest))
    nnx.update(model, *local)
    model.eval()
    return last


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
    fn = _eval_step(graphdef)
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
        _batch_stats(model, xb)
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
def _batch_stats(model: nnx.Module, x: jax.Array) -> None:
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
        model(jnp.asarray(x), None)
    finally:
        for q in quants:
            q.calibrating = False
