"""Generalized TQT: a learned real-valued ``log2`` threshold, never rounded to a power of two.

Jain et al., "Trained Quantization Thresholds" (arXiv 1903.08066), as generalized in QuantLab and used for the
fine-tuning in Free Bits (arXiv 2307.02894): ``t = 2^log_t``, the grid follows ``t`` (unsigned ``[0, t]``,
almost-symmetric signed ``[-t, t (2^b-2)/2^b]``), and the ``log_t`` gradient is normalized Adam-style
(beta 0.9, bias-corrected, eps 1e-5) and squashed by tanh before the shared SGD optimizer.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import optax

from fb_search.quant._grids import fake_quant, grid, level_grid

LN2 = math.log(2.0)  # a Python float: no JAX work at import (jax.distributed.initialize must come first)


def _expand(log_t: jax.Array, ndim: int) -> jax.Array:
    # Per-channel thresholds have shape (C,) and broadcast over the last (output-channel) axis.
    return log_t if log_t.ndim == 0 else log_t.reshape((1,) * (ndim - 1) + log_t.shape)


def _reduce_axes(log_t: jax.Array, ndim: int) -> tuple[int, ...]:
    return tuple(range(ndim)) if log_t.ndim == 0 else tuple(range(ndim - 1))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def tqt_quant(x: jax.Array, log_t: jax.Array, bits: int, signed: bool) -> jax.Array:
    """TQT fake-quantizer with QuantLab's hand-written backward (``TQTQuantFunc``).

    Args:
      x: tensor; for per-channel thresholds the channels are on the last axis (HWIO).
      log_t: ``log2`` of the threshold, scalar or one per output channel.
      bits: bit width.
      signed: almost-symmetric signed grid if True, else ``[0, t]``.

    Returns:
      ``lo + eps * round((clip(x, lo, hi) - lo) / eps)``. Gradients: ``g * 1[lo <= x < hi]`` to ``x`` and
      ``ln2 * sum(g * (hi if x >= hi, lo if x < lo, q - x otherwise))`` to ``log_t``
      (QuantLab's ``TQTQuantFunc.backward``).
    """
    return fake_quant(x, *grid(jnp.exp2(_expand(log_t, x.ndim)), bits, signed))


def _fwd(x, log_t, bits, signed):
    lo, hi, eps = grid(jnp.exp2(_expand(log_t, x.ndim)), bits, signed)
    q = fake_quant(x, lo, hi, eps)
    return q, (x, q, lo, hi, log_t)


def _grads(res, g):
    x, q, lo, hi, log_t = res[:5]
    gx = jnp.where((x >= lo) & (x < hi), g, 0.0)
    contrib = jnp.where(x >= hi, g * hi, jnp.where(x < lo, g * lo, g * (q - x)))
    return gx, LN2 * jnp.sum(contrib, axis=_reduce_axes(log_t, x.ndim)).reshape(log_t.shape)


def _bwd(bits, signed, res, g):
    return _grads(res, g)


tqt_quant.defvjp(_fwd, _bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def tqt_quant_levels(x: jax.Array, log_t: jax.Array, levels: jax.Array, signed: bool) -> jax.Array:
    """:func:`tqt_quant` with the grid's level count ``2^b`` as a traced float32 value (``levels`` gets a zero
    cotangent).

    What :class:`fb_search.quant.TQTQuant` calls inside a compiled function: its bit width is module state, so
    fine-tuning networks that differ only in precisions runs one compiled train step.
    """
    return fake_quant(x, *level_grid(jnp.exp2(_expand(log_t, x.ndim)), levels, signed))


def _levels_fwd(x, log_t, levels, signed):
    lo, hi, eps = level_grid(jnp.exp2(_expand(log_t, x.ndim)), levels, signed)
    q = fake_quant(x, lo, hi, eps)
    return q, (x, q, lo, hi, log_t, levels)


def _levels_bwd(signed, res, g):
    return (*_grads(res, g), jnp.zeros_like(res[5]))


tqt_quant_levels.defvjp(_levels_fwd, _levels_bwd)


def tqt_quant_autodiff(x: jax.Array, log_t: jax.Array, bits: int, signed: bool) -> jax.Array:
    """The same forward written with a straight-through round only, for checking ``tqt_quant``.

    Autodiff gives ``tqt_quant``'s gradients everywhere except where ``x`` lies exactly on a clip bound: there
    ``jnp.clip`` passes (part of) the gradient to ``x`` and ``log_t`` by its own tie convention, while the
    hand-written backward counts ``x == hi`` as clipped and ``x == lo`` as inside.
    """
    lo, hi, eps = grid(jnp.exp2(_expand(log_t, x.ndim)), bits, signed)
    u = (jnp.clip(x, lo, hi) - lo) / eps
    return lo + eps * (u + jax.lax.stop_gradient(jnp.round(u) - u))


def tqt_grad_normalizer(beta: float = 0.9, eps: float = 1e-5, use_tanh: bool = True) -> optax.GradientTransformation:
    """QuantLab's in-backward ``log_t`` gradient normalization as an optax transform.

    ``g / (sqrt(v_hat) + eps)`` with ``v`` a bias-corrected EMA of ``g^2`` (decay ``beta``), then ``tanh``.
    """
    base = optax.scale_by_adam(b1=0.0, b2=beta, eps=eps)
    if not use_tanh:
        return base
    return optax.chain(base, optax.stateless(lambda u, p=None: jax.tree.map(jnp.tanh, u)))
