"""QuantLab/PULP uniform grids and the straight-through fake-quantizer.

Two grids (Free Bits, arXiv 2307.02894, uses QuantLab's; see also Jain et al., arXiv 1903.08066):

* unsigned activations: ``[0, t]`` with ``2^b`` levels, step ``t / (2^b - 1)``, integers ``[0, 2^b - 1]``;
* signed, "almost symmetric" (weights, signed activations): ``[-t, t (2^b - 2) / 2^b]``, step ``2 t / 2^b``,
  integers ``[-2^(b-1), 2^(b-1) - 1]``.

Both are nested: every coarser grid of the same ``t`` is a subset of the finer one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from fb_schema import grid as schema_grid


def grid_levels(bits: int) -> np.float32:
    """The level count ``2^b`` of a ``b``-bit grid as an exact float32 host value.

    Quantizer modules keep this value as state (:class:`fb_search.quant.Levels`) rather than the bit width as a
    Python int, so that networks differing only in precisions share one compiled program. It is computed here on
    the host (exact for ``b <= 24``) instead of with ``exp2`` on the device, whose result need not be exact.
    """
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 24:
        raise ValueError(f"bits: expected an integer in 1..24, got {bits!r}")
    return np.float32(2**bits)


def level_grid(t: jax.Array, levels: jax.Array | float, signed: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
    """:func:`grid` with the level count ``2^b`` given as a (possibly traced) float32 value.

    ``levels - 1`` and ``levels / 2`` are exact in float32 for every ``levels = 2^b`` (``b <= 24``). The unsigned
    step multiplies by ``1 / (levels - 1)``, which is what XLA compiles :func:`grid`'s division by the constant
    ``2^b - 1`` into: a compiled program with traced bit widths then computes bit for bit what it computed with
    static ones (eagerly the two differ in the last bit of the step).
    """
    if signed:
        eps = 2.0 * t / levels
        lo = -t
        return lo, lo + (levels - 1) * eps, eps
    return jnp.zeros_like(t), t, t * (1.0 / (levels - 1))


def grid(t: jax.Array, bits: int, signed: bool) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(lo, hi, eps) of the ``bits``-bit grid with threshold ``t`` (broadcastable).

    Args:
      t: the clip threshold (unsigned upper bound, or signed magnitude ``-lo``), positive.
      bits: bit width b.
      signed: almost-symmetric signed grid if True, else ``[0, t]``.

    Returns:
      lower bound, upper bound and step of the grid.
    """
    levels = 2**bits
    if signed:
        eps = 2.0 * t / levels
        lo = -t
        return lo, lo + (levels - 1) * eps, eps
    return jnp.zeros_like(t), t, t / (levels - 1)


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """The integer range of a grid: ``[-2^(b-1), 2^(b-1)-1]`` (signed) or ``[0, 2^b - 1]`` (``fb_schema.grid``)."""
    return schema_grid(bits, signed)


def step(t: jax.Array, bits: int, signed: bool) -> jax.Array:
    """The step (scale) of a grid, as stored in a QuantizedNetwork."""
    return grid(t, bits, signed)[2]


def fake_quant(x: jax.Array, lo: jax.Array, hi: jax.Array, eps: jax.Array) -> jax.Array:
    """``lo + eps * round((clip(x, lo, hi) - lo) / eps)``, round half to even (as torch.round), no gradient."""
    return lo + eps * jnp.round((jnp.clip(x, lo, hi) - lo) / eps)


def fq_ste(
    x: jax.Array, lo: jax.Array, hi: jax.Array, eps: jax.Array, mask: tuple[jax.Array, jax.Array] | None = None
) -> jax.Array:
    """Fake-quantize with QuantLab's straight-through estimator (``PACTQuantFunc``).

    The value is :func:`fake_quant`; the gradient to ``x`` is 1 inside ``[lo, hi)`` and 0 outside. The bounds
    receive no gradient. ``mask`` optionally gives a different ``(lo, hi)`` for the gradient mask (the Bayesian
    Bits quantizer uses the widest enabled range, see :mod:`fb_search.quant._bayesian_bits`).
    """
    lo, hi, eps = (jax.lax.stop_gradient(v) for v in (lo, hi, eps))
    mlo, mhi = (lo, hi) if mask is None else (jax.lax.stop_gradient(m) for m in mask)
    q = fake_quant(x, lo, hi, eps)
    inside = (x >= mlo) & (x < mhi)
    xp = jnp.where(inside, x, jax.lax.stop_gradient(x))
    return xp + jax.lax.stop_gradient(q - xp)


def weight_threshold(w: jax.Array) -> jax.Array:
    """Per-output-channel ``max|w|`` (channels on the last axis, HWIO / (in, out)), never zero, no gradient."""
    m = jnp.max(jnp.abs(w), axis=tuple(range(w.ndim - 1)))
    return jax.lax.stop_gradient(jnp.maximum(m, 1e-8))
