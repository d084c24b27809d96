"""Bit widths as state: same numerics as the static-bits formulas, one compilation for all configs of a network."""

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax import monitoring

import fb_search
from fb_schema import Precision
from fb_schema.topologies import digitsnet
from fb_search import QNet, homogeneous, load_into
from fb_search.quant import FixedQuant, Levels, TQTQuant, fake_quant, fq_ste, grid_levels

BITS = (2, 4, 8)


def _static_grid(t, bits, signed):
    """The grid as computed before bit widths became state (Python-int level count)."""
    levels = 2**bits
    if signed:
        eps = 2.0 * t / levels
        return -t, -t + (levels - 1) * eps, eps
    return jnp.zeros_like(t), t, t / (levels - 1)


def _expand(log_t, ndim):
    return log_t if log_t.ndim == 0 else log_t.reshape((1,) * (ndim - 1) + log_t.shape)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _static_tqt(x, log_t, bits, signed):
    return fake_quant(x, *_static_grid(jnp.exp2(_expand(log_t, x.ndim)), bits, signed))


def _static_fwd(x, log_t, bits, signed):
    lo, hi, eps = _static_grid(jnp.exp2(_expand(log_t, x.ndim)), bits, signed)
    q = fake_quant(x, lo, hi, eps)
    return q, (x, q, lo, hi, log_t)


def _static_bwd(bits, signed, res, g):
    x, q, lo, hi, log_t = res
    gx = jnp.where((x >= lo) & (x < hi), g, 0.0)
    contrib = jnp.where(x >= hi, g * hi, jnp.where(x < lo, g * lo, g * (q - x)))
    axes = tuple(range(x.ndim)) if log_t.ndim == 0 else tuple(range(x.ndim - 1))
    return gx, jnp.log(2.0) * jnp.sum(contrib, axis=axes).reshape(log_t.shape)


_static_tqt.defvjp(_static_fwd, _static_bwd)


def _close(got, want):
    """Within 1e-6 relative of the tensor's scale (single values near 0 carry the rounding of ``lo + eps * k``)."""
    want = np.asarray(want)
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6 * float(np.max(np.abs(want))))


def _traced(q, fn):
    """``fn(q)`` under jit, the quantizer's state (its Levels included) passed in as traced arrays."""
    graphdef, state = nnx.split(q)
    return jax.jit(lambda s: fn(nnx.merge(graphdef, s)))(state)


def test_grid_levels_are_exact_float32():
    for b in range(1, 25):
        assert grid_levels(b) == np.float32(2**b) and grid_levels(b) - np.float32(1) == np.float32(2**b - 1)
    with pytest.raises(ValueError, match="bits: expected an integer in 1..24"):
        grid_levels(0)


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("is_weight", [True, False])
def test_fixed_quant_matches_static_bits(bits, signed, is_weight):
    x = jax.random.normal(jax.random.key(bits), (3, 3, 4, 6)) * 2
    q = FixedQuant(bits, signed, is_weight, 1.3)
    assert q.bits == bits and isinstance(q.levels, Levels)
    t = q.threshold(x)

    def ref(x, t):
        return fq_ste(x, *_static_grid(t, bits, signed))

    g = jax.random.normal(jax.random.key(7), x.shape)
    want, want_grad = ref(x, t), jax.grad(lambda x: jnp.sum(g * ref(x, t)))(x)
    got = _traced(q, lambda m: m(x))
    got_grad = _traced(q, lambda m: jax.grad(lambda x: jnp.sum(g * m(x)))(x))
    _close(got, want)
    _close(got_grad, want_grad)
    np.testing.assert_array_equal(q.scale(x), _static_grid(t, bits, signed)[2])


@pytest.mark.parametrize("bits", BITS)
@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize("is_weight", [True, False])
def test_tqt_quant_matches_static_bits(bits, signed, is_weight):
    x = jax.random.normal(jax.random.key(bits), (3, 3, 4, 6)) * 2
    t = np.linspace(0.5, 3.0, 6, dtype=np.float32) if is_weight else 1.7
    q = TQTQuant(bits, signed, is_weight, t)
    log_t = q.log_t[...]
    g = jax.random.normal(jax.random.key(7), x.shape)

    want = _static_tqt(x, log_t, bits, signed)
    want_gx, want_gt = jax.grad(lambda x, lt: jnp.sum(g * _static_tqt(x, lt, bits, signed)), (0, 1))(x, log_t)
    got = _traced(q, lambda m: m(x))
    got_gx = _traced(q, lambda m: jax.grad(lambda x: jnp.sum(g * m(x)))(x))
    got_gt = _traced(q, lambda m: nnx.grad(lambda m: jnp.sum(g * m(x)))(m)["log_t"][...])
    for a, b in ((got, want), (got_gx, want_gx), (got_gt, want_gt)):
        _close(a, b)
    # compiled, bit for bit what the static-bits program computes (fine-tuning artifacts stay the same)
    np.testing.assert_array_equal(got, jax.jit(_static_tqt, static_argnums=(2, 3))(x, log_t, bits, signed))


def test_bits_are_state_not_structure():
    a = QNet(digitsnet(), "tqt", homogeneous("digitsnet", 4, 4), rngs=nnx.Rngs(0))
    b = QNet(digitsnet(), "tqt", homogeneous("digitsnet", 2, 8), rngs=nnx.Rngs(0))
    assert nnx.graphdef(a) == nnx.graphdef(b)
    assert a.precisions() != b.precisions()
    # a checkpoint never overrides the precisions the model was built with
    before = b.precisions()
    load_into(b, nnx.to_pure_dict(nnx.state(a)))
    assert b.precisions() == before and before["pw2"] == Precision(2, 8)


@contextlib.contextmanager
def _backend_compiles():
    """Count XLA compilations inside the block."""
    count = [0]

    def listener(event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            count[0] += 1

    monitoring.register_event_duration_secs_listener(listener)
    try:
        yield count
    finally:
        monitoring.unregister_event_duration_listener(listener)


def test_configs_of_one_network_compile_once(digits, untrained_ckpt, tmp_path):
    """Evaluating (BN re-estimation, predict) and TQT fine-tuning a second config compiles nothing new."""
    first, second = homogeneous("digitsnet", 4, 4), homogeneous("digitsnet", 2, 8)
    fb_search.evaluate(first, untrained_ckpt, digits)
    fb_search.finetune(first, untrained_ckpt, digits, steps=2, out_dir=tmp_path)
    with _backend_compiles() as count:
        fb_search.evaluate(second, untrained_ckpt, digits)
        _, artifact = fb_search.finetune(second, untrained_ckpt, digits, steps=2, out_dir=tmp_path)
    assert count[0] == 0
    assert fb_search.load_quantized_network(artifact)[2].layer("pw2").precision.b_in == 2
