"""Quantizers: grids, Bayesian Bits nesting and gates, TQT gradients and normalizer."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from fb_search.quant import (
    bb_quantize,
    bits_from_gates,
    fake_quant,
    fq_ste,
    grid,
    hc_sample,
    int_range,
    p_zero,
    tqt_grad_normalizer,
    tqt_quant,
    tqt_quant_autodiff,
)

ON, OFF = 10.0, -10.0


@pytest.mark.parametrize("bits", [2, 4, 8])
@pytest.mark.parametrize("signed", [True, False])
def test_grid_integer_ranges(bits, signed):
    t = jnp.asarray(1.7)
    lo, hi, eps = grid(t, bits, signed)
    x = jnp.linspace(-5, 5, 20001)
    codes = np.unique(np.round(np.asarray((fake_quant(x, lo, hi, eps)) / eps)))
    assert (codes.min(), codes.max()) == int_range(bits, signed)
    assert len(codes) == 2**bits
    if signed:  # almost symmetric: [-t, t (2^b - 2) / 2^b]
        assert float(hi) == pytest.approx(1.7 * (2**bits - 2) / 2**bits)
    else:
        assert float(eps) == pytest.approx(1.7 / (2**bits - 1))


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize(("gates", "bits"), [((OFF, OFF), 2), ((ON, OFF), 4), ((ON, ON), 8)])
def test_bb_all_gates_on_equals_plain_quantizer(signed, gates, bits):
    x = jax.random.normal(jax.random.key(0), (3, 3, 4, 6)) * 2
    t = jnp.max(jnp.abs(x), axis=(0, 1, 2))
    phi = jnp.asarray(gates)
    lo, hi, eps = grid(t, bits, signed)
    plain = np.round(np.asarray(fake_quant(x, lo, hi, eps) / eps))
    for key in (None, jax.random.key(1)):  # test-time and (gates saturated) training forward
        q = bb_quantize(x, t, signed, phi, 0.5, key)
        np.testing.assert_array_equal(np.round(np.asarray(q / eps)), plain)
    assert bits_from_gates(phi, 0.5) == bits


def test_nested_grids():
    t = jnp.asarray(3.0)
    x = jnp.linspace(-4, 4, 1001)
    for signed in (True, False):
        q2 = fake_quant(x, *grid(t, 2, signed))
        eps8 = grid(t, 8, signed)[2]
        np.testing.assert_allclose(np.asarray(q2 / eps8), np.round(np.asarray(q2 / eps8)), atol=1e-4)


def test_hard_concrete_closed_form_and_threshold():
    for phi, expected in ((2.0, 0.039), (0.0, 0.23), (-2.0, 0.69)):
        z = hc_sample(jax.random.key(0), jnp.asarray([phi]), 0.5, (200_000,))
        assert float(jnp.mean(z == 0)) == pytest.approx(float(p_zero(jnp.asarray(phi), 0.5)), abs=5e-3)
        assert float(p_zero(jnp.asarray(phi), 0.5)) == pytest.approx(expected, abs=5e-3)
    # gate ON iff P(z = 0) < 0.34 <=> phi > -0.5357 at T = 0.5
    assert bits_from_gates(np.array([-0.53, 5.0]), 0.5) == 8
    assert bits_from_gates(np.array([-0.54, 5.0]), 0.5) == 2
    assert bits_from_gates(np.array([5.0, -0.54]), 0.5) == 4


def test_bb_gate_gradient_and_weight_mask():
    w = jax.random.normal(jax.random.key(0), (1, 1, 8, 4))
    t = jnp.max(jnp.abs(w), axis=(0, 1, 2))

    def loss(phi, w, mask, seed=3):
        return jnp.sum(bb_quantize(w, t, True, phi, 0.5, jax.random.key(seed), quantlab_mask=mask) ** 2)

    gphi = np.stack([jax.grad(loss)(jnp.asarray([0.0, 0.0]), w, False, s) for s in range(10)])
    assert np.all(np.isfinite(gphi)) and np.all(np.any(gphi != 0, axis=0))  # both gates learn
    big = np.asarray(w >= t / 2)  # QuantLab's 2-bit mask zeroes these weights' task gradient
    g_ql = np.asarray(jax.grad(loss, 1)(jnp.asarray([ON, ON]), w, True))
    g_wide = np.asarray(jax.grad(loss, 1)(jnp.asarray([ON, ON]), w, False))
    assert big.any() and np.all(g_ql[big] == 0) and np.all(g_wide[big & (w < t * 127 / 128)] != 0)


def _closed_form(x, log_t, bits, signed, axes):
    lo, hi, eps = grid(jnp.exp2(log_t), bits, signed)
    q = fake_quant(x, lo, hi, eps)
    c = jnp.where(x >= hi, hi, jnp.where(x < lo, lo, q - x))
    return np.log(2) * np.asarray(jnp.sum(c, axis=axes))


@pytest.mark.parametrize(("bits", "signed"), [(2, True), (4, True), (8, False), (4, False)])
def test_tqt_threshold_gradient(bits, signed):
    x = jax.random.normal(jax.random.key(bits), (3, 3, 5, 4)) * 3
    log_t = jnp.asarray([0.3, 1.0, -0.2, 0.7])
    closed = _closed_form(x, log_t, bits, signed, (0, 1, 2))
    g_vjp = jax.grad(lambda lt: jnp.sum(tqt_quant(x, lt, bits, signed)))(log_t)
    g_auto = jax.grad(lambda lt: jnp.sum(tqt_quant_autodiff(x, lt, bits, signed)))(log_t)
    np.testing.assert_allclose(g_vjp, closed, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(g_auto, closed, rtol=1e-4, atol=1e-4)
    gx = jax.grad(lambda x: jnp.sum(tqt_quant(x, log_t, bits, signed)))(x)
    lo, hi, _ = grid(jnp.exp2(log_t), bits, signed)
    np.testing.assert_array_equal(gx, ((x >= lo) & (x < hi)).astype(np.float32))
    # per-tensor threshold of an activation
    scalar = jnp.asarray(0.5)
    g = jax.grad(lambda lt: jnp.sum(tqt_quant(x, lt, bits, signed)))(scalar)
    assert float(g) == pytest.approx(float(_closed_form(x, scalar, bits, signed, None)), rel=1e-5, abs=1e-5)


def test_tqt_normalizer_matches_hand_rolled():
    grads = [jnp.asarray([0.5, -2.0]), jnp.asarray([0.1, 3.0]), jnp.asarray([-1.0, 0.0])]
    tx = tqt_grad_normalizer()
    state = tx.init(grads[0])
    v, beta = np.zeros(2), 0.9
    for k, g in enumerate(grads, start=1):
        out, state = tx.update(g, state)
        v = beta * v + (1 - beta) * np.asarray(g) ** 2
        want = np.tanh(np.asarray(g) / (np.sqrt(v / (1 - beta**k)) + 1e-5))
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-6)
    assert isinstance(tx, optax.GradientTransformation)


def test_fq_ste_gradient_mask():
    x = jnp.asarray([-2.0, -0.5, 0.0, 0.5, 0.99, 2.0])
    lo, hi, eps = grid(jnp.asarray(1.0), 4, True)
    g = jax.grad(lambda x: jnp.sum(fq_ste(x, lo, hi, eps)))(x)
    np.testing.assert_array_equal(g, [0, 1, 1, 1, 0, 0])  # hi = 7/8: 0.99 is clipped
