"""Bayesian Bits' training quantizer with a hand-written backward pass (the fused kernels' form).

Differentiated by JAX, :func:`fb_search.quant.bb_quantize` leaves XLA the three fake-quant grids of every tensor
as intermediate values of the backward pass; XLA:CPU recomputes them inside each backward fusion that reads one
(the previous layer's BatchNorm and conv gradients), several times per element. With ``fused=True`` it
combines the residuals with :func:`residual_quant` instead, whose forward pass computes
the output in one elementwise pass and keeps only the input; the backward pass recomputes the grids from it once,
for the input gradient (the straight-through mask) and the gates' gradients (per-sample sums of the upstream
gradient times each upgrade residual ``Q_k - Q_{k-1}``, one reduction for all gates). The output and the upstream
gradient are materialized once (see :func:`_materialized`). Values are those of ``bb_quantize``; the gradients
too, up to float rounding (the gate sums are taken in another order, and the backward pass multiplies by the
reciprocal step).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from fb_search._ops import _materialize, sums_in_one_pass
from fb_search.quant._grids import fake_quant, grid


def _gate(zk: jax.Array, x: jax.Array, per_sample: bool) -> jax.Array:
    return zk.reshape((-1,) + (1,) * (x.ndim - 1)) if per_sample else zk


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4, 5, 6))
def residual_quant(x, t, z, signed: bool, precs: tuple[int, ...], per_sample: bool, quantlab_mask: bool):
    """``Q_0(x) + sum_k z_k * (Q_k(x) - Q_{k-1}(x))`` with ``z`` the cumulative gates, shape ``(K-1,)`` or
    ``(K-1, N)`` (``per_sample``): the training value of :func:`fb_search.quant.bb_quantize` (``fused=True``);
    ``t`` gets no gradient."""
    return _materialized(x, t, z, signed, precs, per_sample)


def _materialized(x, t, z, signed, precs, per_sample):
    """The output as a buffer of its own, computed in one pass.

    Fused into its consumers, XLA:CPU would recompute the three grids in each of them: nine times per element in
    the taps of a depthwise conv, which read every input and weight nine times. It drops optimization barriers
    before fusing, but not the boundary of a conditional. The grids need ``t > 0`` (otherwise the steps are zero
    or negative); the other branch gives NaN.
    """
    return jax.lax.cond(
        jnp.all(t > 0),
        lambda x, t, z: _forward(x, t, z, signed, precs, per_sample),
        lambda x, t, z: jnp.full(x.shape, jnp.nan, x.dtype),
        x,
        t,
        z,
    )


def _forward(x, t, z, signed, precs, per_sample):
    qs = [fake_quant(x, *grid(t, b, signed)) for b in precs]
    out = x + (qs[0] - x)  # bb_quantize's straight-through form, rounded alike
    for k in range(1, len(precs)):
        out = out + _gate(z[k - 1], x, per_sample) * (qs[k] - qs[k - 1])
    return out


def _fwd(x, t, z, signed, precs, per_sample, quantlab_mask):
    return _materialized(x, t, z, signed, precs, per_sample), (x, t, z)


def _fake_quant_by_reciprocal(x, lo, hi, eps):
    return lo + eps * jnp.round((jnp.clip(x, lo, hi) - lo) * (1.0 / eps))


def _bwd(signed, precs, per_sample, quantlab_mask, res, g):
    x, t, z = res
    # read by the masked input gradient and the gate sums: computed once (e.g. a depthwise conv's nine taps of the
    # input gradient; fused into both, XLA:CPU wrote each tap to memory)
    g = _materialize(g, jnp.ravel(t)[0])
    grids = [grid(t, b, signed) for b in precs]
    lo, hi = grids[0][0], grids[0 if quantlab_mask else -1][1]
    gx = jnp.where((x >= lo) & (x < hi), g, jnp.zeros((), g.dtype))
    # the residuals again, from x: the divisions were the slow part of this pass on XLA:CPU, and a product with the
    # reciprocal step rounds to the forward's grid point except at exact ties
    qs = [_fake_quant_by_reciprocal(x, *gr) for gr in grids]
    # all gates in one pass, recomputing the grids as it reads x and g (a sum per gate read the rounded and
    # clipped x from buffers written for it)
    prods = [g * (qs[k] - qs[k - 1]) for k in range(1, len(precs))]
    dims = tuple(range(1, x.ndim)) if per_sample else tuple(range(x.ndim))
    gz = jnp.stack(sums_in_one_pass(prods, dims))
    return gx, jnp.zeros_like(t), gz.astype(z.dtype)


residual_quant.defvjp(_fwd, _bwd)
