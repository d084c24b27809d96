"""Bayesian Bits gates and the nested residual quantizer (van Baalen et al., arXiv 2005.07093; QuantLab variant).

Each quantized tensor holds the grids of all precisions (2 -> 4 -> 8); the 2-bit result is always used and each
upgrade residual ``Q_k - Q_{k-1}`` is multiplied by the cumulative product of hard-concrete gates. There is no
pruning gate (the lowest precision is always on), as in QuantLab which Free Bits (arXiv 2307.02894) used.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from fb_search.quant._bb_fused import residual_quant
from fb_search.quant._grids import fake_quant, fq_ste, grid

HC_LO, HC_HI = -0.1, 1.1  # stretch limits (gamma, zeta): QuantLab hc_stretch = 1.2
TEST_THRESHOLD = 0.34  # gate ON iff P(z = 0) < 0.34 (reference and QuantLab)
PRECS = (2, 4, 8)


def _c0(temperature: float) -> float:
    return temperature * float(np.log(-HC_LO / HC_HI))


def p_nonzero(phi: jax.Array, temperature: float) -> jax.Array:
    """R(phi) = P(z != 0) = sigmoid(phi - T ln(-gamma/zeta)) of a hard-concrete gate."""
    return jax.nn.sigmoid(phi - _c0(temperature))


def p_zero(phi: jax.Array, temperature: float) -> jax.Array:
    """P(z = 0) of a hard-concrete gate (QuantLab ``bb_cdf(0)``)."""
    return jax.nn.sigmoid(_c0(temperature) - phi)


def hc_sample(key: jax.Array, phi: jax.Array, temperature: float, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    """Sample stretched, clamped binary-concrete gates; shape ``phi.shape + batch_shape``.

    Gradients reach ``phi`` only where the stretched sample lies strictly inside (0, 1).
    """
    u = jax.random.uniform(key, phi.shape + batch_shape, minval=1e-6, maxval=1 - 1e-6)
    lead = phi.reshape(phi.shape + (1,) * len(batch_shape))
    s = jax.nn.sigmoid((jnp.log(u) - jnp.log1p(-u) + lead) / temperature)
    return jnp.clip(s * (HC_HI - HC_LO) + HC_LO, 0.0, 1.0)


def gates_on(phi: jax.Array, temperature: float) -> jax.Array:
    """Deterministic test-time gates: ON iff P(z = 0) < 0.34."""
    return p_zero(phi, temperature) < TEST_THRESHOLD


def level_index(phi: jax.Array, temperature: float) -> jax.Array:
    """Index into the precisions reached through consecutive ON gates (traceable)."""
    return jnp.sum(jnp.cumprod(gates_on(phi, temperature).astype(jnp.int32)))


def bits_from_gates(phi, temperature: float, precs: Sequence[int] = PRECS) -> int:
    """The bit width read off the gates (host side): the largest precision reached through ON gates.

    Example:
        >>> bits_from_gates(np.array([2.0, -2.0]), 0.5)
        4
    """
    return int(precs[int(level_index(jnp.asarray(phi), temperature))])


def precision_probs(phi: jax.Array, temperature: float) -> jax.Array:
    """The distribution over precisions the gates give: pi(p_0) = 1 - R_1, pi(p_k) = prod_{i<=k} R_i (1 - R_{k+1}).

    Example:
        >>> [round(float(p), 3) for p in precision_probs(jnp.array([10.0, -10.0]), 0.5)]
        [0.0, 1.0, 0.0]
    """
    cum = jnp.concatenate([jnp.ones((1,)), jnp.cumprod(p_nonzero(phi, temperature))])
    nxt = jnp.concatenate([cum[1:], jnp.zeros((1,))])
    return cum - nxt


def expected_bits(phi: jax.Array, temperature: float, precs: Sequence[int] = PRECS) -> jax.Array:
    """E[b] under the gates' marginals (:func:`precision_probs`)."""
    probs = precision_probs(phi, temperature)
    return jnp.sum(probs * jnp.asarray(precs, dtype=probs.dtype))


def gate_cost(phi: jax.Array, temperature: float, precs: Sequence[int] = PRECS) -> jax.Array:
    """QuantLab's BOP-target term of one quantizer: ``sum_{j>p_0} j * prod_{i<=j} R(phi_i)`` (2-bit term dropped)."""
    return jnp.sum(jnp.cumprod(p_nonzero(phi, temperature)) * jnp.asarray(precs[1:], dtype=phi.dtype))


def bb_quantize(
    x: jax.Array,
    t: jax.Array,
    signed: bool,
    phi: jax.Array,
    temperature: float,
    key: jax.Array | None,
    precs: Sequence[int] = PRECS,
    per_sample: bool = False,
    quantlab_mask: bool = False,
    fused: bool = False,
) -> jax.Array:
    """The Bayesian Bits fake-quantizer of one tensor.

    Training (``key`` given): ``out = Q_0(x) + sum_k (prod_{i<=k} z_i) * sg(Q_k(x) - Q_{k-1}(x))`` with sampled
    gates ``z`` (one sample per call, or one per batch element if ``per_sample``). At test time (``key`` None)
    the gates are deterministic and the output is the plain quantizer at the precision they reach.

    Args:
      x: tensor to quantize (batch first for activations; HWIO for weights).
      t: threshold of the grids (``[0, t]`` or ``[-t, ...]``), broadcastable to ``x``.
      signed: almost-symmetric signed grids if True.
      phi: gate locations, shape ``(len(precs) - 1,)``.
      temperature: hard-concrete temperature T.
      key: PRNG key for the gate samples, or None for the deterministic test-time quantizer.
      precs: ascending precisions.
      per_sample: one gate sample per batch element (QuantLab's activations) instead of one per call.
      quantlab_mask: pass the task gradient through the clip mask of the lowest precision, as QuantLab does
        (weights in ``[t/2, t]`` then get no gradient when signed). Default: the widest precision's mask.
      fused: in training, the same value with a hand-written backward pass that recomputes the grids from ``x``
        once (:func:`fb_search.quant._bb_fused.residual_quant`; the fused kernels' form, equal up to float
        rounding); the default differentiates the expression above.

    Returns:
      the fake-quantized tensor, in real units.
    """
    grids = [grid(t, b, signed) for b in precs]
    if key is None:
        idx = level_index(phi, temperature)
        # a chain of selects, not jnp.take from a stack: XLA:CPU fuses it (digitsnet eval forward 6x faster)
        value = _select(idx, [fake_quant(x, *g) for g in grids])
        hi = _select(idx, [jnp.broadcast_to(g[1], jnp.shape(t)) for g in grids])
        inside = (x >= jax.lax.stop_gradient(grids[0][0])) & (x < jax.lax.stop_gradient(hi))
        xp = jnp.where(inside, x, jax.lax.stop_gradient(x))
        return xp + jax.lax.stop_gradient(value - xp)
    batch_shape = (x.shape[0],) if per_sample else ()
    z = jnp.cumprod(hc_sample(key, phi, temperature, batch_shape), axis=0)
    if fused:
        return residual_quant(x, jax.lax.stop_gradient(t), z, signed, tuple(precs), per_sample, quantlab_mask)
    mask = None if quantlab_mask else (grids[0][0], grids[-1][1])
    out = fq_ste(x, *grids[0], mask=mask)
    prev = fake_quant(x, *grids[0])
    for k in range(1, len(precs)):
        cur = fake_quant(x, *grids[k])
        ck = z[k - 1]
        if per_sample:
            ck = ck.reshape((-1,) + (1,) * (x.ndim - 1))
        out = out + ck * jax.lax.stop_gradient(cur - prev)
        prev = cur
    return out


def _select(idx: jax.Array, options: list[jax.Array]) -> jax.Array:
    """``options[idx]`` for a traced scalar ``idx`` (elementwise selects)."""
    out = options[-1]
    for i in range(len(options) - 2, -1, -1):
        out = jnp.where(idx == i, options[i], out)
    return out


def bb_layer_reg(phi_w: jax.Array | None, phi_a: jax.Array | None, mac_ratio: float, temperature: float) -> jax.Array:
    """One layer's regularizer (QuantLab ``BBBOPComplexityRegularizer``): ``MACs/maxMACs * (cost_w + cost_a)``.

    Fixed-precision quantizers pass None and cost nothing. In the locked variant the same ``phi`` is passed twice.
    """
    total = jnp.zeros(())
    for phi in (phi_w, phi_a):
        if phi is not None:
            total = total + gate_cost(phi, temperature)
    return mac_ratio * total
