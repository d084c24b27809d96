"""The Bayesian Bits training quantizer with its hand-written backward (``fused_kernels``) gives the values and
gradients of the autodiff one (``bb_quantize``), alone and inside a network; the plain path stays the default."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fb_schema.topologies import digitsnet, mobilenetv1
from fb_search import QNet
from fb_search._train import cross_entropy
from fb_search.quant import BBOptions, BBQuant
from fb_search.quant._bayesian_bits import bb_quantize
from fb_search.quant._grids import weight_threshold

bb_quantize_fused = functools.partial(bb_quantize, fused=True)


def _rel(a, b):
    return float(jnp.linalg.norm((a - b).ravel()) / jnp.maximum(jnp.linalg.norm(b.ravel()), 1e-30))


def _value_and_grads(fn, x, phi, signed, is_weight, per_sample, quantlab_mask, g):
    def f(x, phi):
        t = weight_threshold(x) if is_weight else jnp.asarray(2.5, x.dtype)
        return fn(x, t, signed, phi, 0.5, jax.random.key(12), per_sample=per_sample, quantlab_mask=quantlab_mask)

    @jax.jit
    def run(x, phi, g):
        out, vjp = jax.vjp(f, x, phi)
        return (out, *vjp(g))

    return run(x, phi, g)


@pytest.mark.parametrize("signed", [False, True])
@pytest.mark.parametrize("per_sample", [False, True])
@pytest.mark.parametrize("quantlab_mask", [False, True])
@pytest.mark.parametrize("is_weight", [False, True])
def test_fused_quantizer_equals_autodiff(signed, per_sample, quantlab_mask, is_weight):
    """float64: the output within 1e-6 relative (it is the same expression), the gradients to ``x`` and ``phi``
    within 1e-5; and every input's gradient mask and every gate's gradient actually exercised."""
    per_sample = per_sample and not is_weight  # as BBQuant: weights have one sample per call
    with jax.enable_x64(True):
        kx, kg = jax.random.split(jax.random.key(0))
        shape = (3, 3, 4, 6) if is_weight else (5, 4, 4, 6)
        x = 2.0 * jax.random.normal(kx, shape, jnp.float64) + (0.0 if signed else 1.0)
        g = jax.random.normal(kg, shape, jnp.float64)
        phi = jnp.array([0.3, -0.2], jnp.float64)  # key 12: both stretched samples inside (0, 1), so phi gets gradients
        args = (x, phi, signed, is_weight, per_sample, quantlab_mask, g)
        fused = _value_and_grads(bb_quantize_fused, *args)
        plain = _value_and_grads(bb_quantize, *args)
        assert all(a.dtype == jnp.float64 for a in fused)
        assert _rel(fused[0], plain[0]) < 1e-6
        assert _rel(fused[1], plain[1]) < 1e-5 and _rel(fused[2], plain[2]) < 1e-5
        assert 0 < int(jnp.sum(fused[1] == 0)) < x.size  # some inputs outside the mask, most inside
        assert jnp.all(jnp.abs(fused[2]) > 1e-6)


def test_fused_quantizer_test_time_is_plain():
    x = jax.random.normal(jax.random.key(0), (2, 3, 3, 4))
    args = (x, jnp.float32(1.5), True, jnp.array([2.0, -1.0]), 0.5, None)
    np.testing.assert_array_equal(bb_quantize_fused(*args), bb_quantize(*args))


def _logits_and_grads(topology, fused, variant, x, y):
    """float64 logits and parameter gradients of a BB network with the fused kernels, its BB quantizers ``fused``
    or not (the conv kernels are the same either way: only the quantizer differs)."""
    model = QNet(topology, "bb", bb=BBOptions(variant=variant), fused_kernels=True, rngs=nnx.Rngs(0))
    for _, q in nnx.iter_graph(model):
        if isinstance(q, BBQuant):
            q.fused = fused
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = jax.tree.map(lambda a: a.astype(jnp.float64) if a.dtype == jnp.float32 else a, (params, rest))

    def loss(params, rest):
        m = nnx.merge(graphdef, params, jax.tree.map(lambda v: v, rest))
        logits = m(x.astype(jnp.float64), jax.random.key(3))
        return cross_entropy(logits, y) + 0.01 * m.regularizer(), logits

    (_, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, rest)
    return logits, grads


@pytest.mark.parametrize(
    "topology,variant",
    [
        (digitsnet(), "locked"),  # weight and activation quantizers sharing their gates
        pytest.param(digitsnet(), "orig", marks=pytest.mark.slow),
        pytest.param(mobilenetv1(0.25, 32, num_classes=10), "orig", marks=pytest.mark.slow),
    ],
    ids=["digits-locked", "digits-orig", "mnv1-orig"],
)
def test_fused_model_matches_plain_model(topology, variant):
    """A BB network with the fused quantizers vs the autodiff ones: logits and every parameter gradient (weights,
    BN, gates) within 1e-5 relative in float64; ``fused_kernels`` reaches every BB quantizer, and only if asked."""
    x = jax.random.uniform(jax.random.key(1), (4, *topology.input_shape))
    y = jnp.arange(4) % topology.num_classes
    quantizers = [q for _, q in nnx.iter_graph(QNet(topology, "bb", fused_kernels=True, rngs=nnx.Rngs(0)))]
    assert all(q.fused for q in quantizers if isinstance(q, BBQuant))
    plain = [q for _, q in nnx.iter_graph(QNet(topology, "bb", rngs=nnx.Rngs(0))) if isinstance(q, BBQuant)]
    assert plain and not any(q.fused for q in plain)
    with jax.enable_x64(True):
        fused = _logits_and_grads(topology, True, variant, x, y)
        ref = _logits_and_grads(topology, False, variant, x, y)
        assert _rel(fused[0], ref[0]) < 1e-5
        leaves = jax.tree_util.tree_flatten_with_path(ref[1])[0]
        assert sum("phi" in jax.tree_util.keystr(p) for p, _ in leaves) > 2
        for (path, b), a in zip(leaves, jax.tree.leaves(fused[1])):
            assert a.dtype == jnp.float64
            assert _rel(a, b) < 1e-5, jax.tree_util.keystr(path)
