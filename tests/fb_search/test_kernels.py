"""The training kernels (custom-VJP depthwise taps, pointwise as a matrix product, fused BatchNorm + ReLU6) give
the plain formulation's outputs, gradients and BatchNorm statistics; depthwise by backend; bfloat16 operands."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fb_schema.topologies import digitsnet, mobilenetv1
from fb_search import QNet, activation
from fb_search._ops import _materialize, batch_norm_act, default_dw_impl, depthwise_taps, pointwise, resolve_dw_impl
from fb_search._train import cross_entropy


def _grouped(x, w, stride, padding):
    t, l, b, r = padding
    return jax.lax.conv_general_dilated(
        x, w, stride, ((t, b), (l, r)), dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1]
    )


@pytest.mark.parametrize(
    "stride,size,batch,pad", [((1, 1), 9, 2, (1, 1, 1, 1)), ((2, 2), 8, 6, (1, 1, 1, 1)), ((2, 2), 9, 3, (0, 0, 1, 1))]
)
def test_depthwise_taps_value_and_grads_equal_grouped_conv(stride, size, batch, pad):
    kx, kw, kg = jax.random.split(jax.random.key(0), 3)
    x = jax.random.normal(kx, (batch, size, size, 5))
    w = jax.random.normal(kw, (3, 3, 1, 5))
    out, vjp = jax.vjp(lambda x, w: depthwise_taps(x, w, stride, pad), x, w)
    ref, vjp_ref = jax.vjp(lambda x, w: _grouped(x, w, stride, pad), x, w)
    g = jax.random.normal(kg, out.shape)
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    for a, b in zip(vjp(g), vjp_ref(g)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


def test_materialize_is_the_identity_computed_into_a_buffer():
    x = jax.random.normal(jax.random.key(0), (4, 5))
    f = jax.jit(lambda x, s: _materialize(jnp.cos(x) * 2.0, s) + 1.0)
    np.testing.assert_array_equal(f(x, 1.0), jnp.cos(x) * 2.0 + 1.0)
    assert np.isnan(f(x, jnp.nan)).all()
    assert "conditional(" in f.lower(x, 1.0).compile().as_text()  # not folded: the producer is a buffer of its own


def test_pointwise_equals_conv():
    x = jax.random.normal(jax.random.key(0), (2, 4, 4, 6))
    w = jax.random.normal(jax.random.key(1), (1, 1, 6, 3))
    ref = jax.lax.conv_general_dilated(x, w, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"))
    np.testing.assert_allclose(pointwise(x, w), ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("act", ["relu6", "relu", "none"])
def test_batch_norm_act_equals_flax_batch_norm(act):
    x = 2.0 * jax.random.normal(jax.random.key(0), (4, 5, 5, 8)) + 1.0
    s = jax.random.normal(jax.random.key(1), (8,))
    b = jax.random.normal(jax.random.key(2), (8,))
    g = jax.random.normal(jax.random.key(3), x.shape)

    def ref(x, s, b):
        bn = nnx.BatchNorm(8, use_running_average=False, rngs=nnx.Rngs(0))  # created in the trace: settable
        bn.scale[...], bn.bias[...] = s, b
        return activation(bn(x), act)

    out, vjp = jax.vjp(lambda *a: batch_norm_act(*a, 1e-5, act)[0], x, s, b)
    expect, vjp_ref = jax.vjp(ref, x, s, b)
    np.testing.assert_allclose(out, expect, rtol=1e-5, atol=1e-5)
    for a, e in zip(vjp(g), vjp_ref(g)):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-5)
    _, mean, var = batch_norm_act(x, s, b, 1e-5, act)
    np.testing.assert_allclose(mean, x.mean((0, 1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(var, x.var((0, 1, 2)), rtol=1e-4, atol=1e-6)


def _loss_and_grads(topology, mode, fast, dtype, x, y, compute_dtype="float32"):
    model = QNet(topology, mode, dw_impl="taps" if fast else "grouped", compute_dtype=compute_dtype, rngs=nnx.Rngs(0))
    model.train()
    model.set_attributes(fast=fast, raise_if_not_found=False)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = jax.tree.map(lambda a: a.astype(dtype) if a.dtype == jnp.float32 else a, (params, rest))

    def loss(params, rest):
        m = nnx.merge(graphdef, params, jax.tree.map(lambda v: v, rest))
        logits = m(x.astype(dtype), jax.random.key(3) if mode == "bb" else None)
        return cross_entropy(logits, y), (logits, nnx.state(m, nnx.BatchStat))

    (_, (logits, stats)), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params, rest)
    return logits, grads, stats


def _rel(a, b):
    return float(jnp.linalg.norm((a - b).ravel()) / jnp.maximum(jnp.linalg.norm(b.ravel()), 1e-30))


@pytest.mark.parametrize(
    "topology,mode",
    [
        (digitsnet(), "float"),
        (digitsnet(), "bb"),
        pytest.param(mobilenetv1(0.25, 32, num_classes=10), "float", marks=pytest.mark.slow),
    ],
)
def test_fast_model_matches_plain_model(topology, mode):
    """Logits, every parameter gradient and the updated BN statistics within 1e-5 relative of the plain path
    (lax convs + nnx.BatchNorm + autodiff, as the layers computed before these kernels). Gradients are compared in
    float64: in float32 the BN-scale gradients of a freshly initialized net are sums that cancel to ~1e-3 of their
    terms, so any change of summation order moves them by percents (the plain path itself is that far from its
    own float64 value); float32 logits, BN statistics and the kernel gradients are compared directly, within the
    float32 rounding of a deep net (on the MobileNet, the taps and the grouped conv without these kernels differ by
    1.9e-5 in their logits)."""
    x = jax.random.uniform(jax.random.key(1), (8, *topology.input_shape))
    y = jnp.arange(8) % topology.num_classes
    with jax.enable_x64(True):
        fast = _loss_and_grads(topology, mode, True, jnp.float64, x, y)
        plain = _loss_and_grads(topology, mode, False, jnp.float64, x, y)
        for a, b in zip(jax.tree.leaves(fast), jax.tree.leaves(plain)):
            assert a.dtype == jnp.float64
            assert _rel(a, b) < 1e-5
    fast32 = _loss_and_grads(topology, mode, True, jnp.float32, x, y)
    plain32 = _loss_and_grads(topology, mode, False, jnp.float32, x, y)
    assert _rel(fast32[0], plain32[0]) < 4e-5  # float32 forward: the logits
    for a, b in zip(jax.tree.leaves(fast32[2]), jax.tree.leaves(plain32[2])):
        assert _rel(a, b) < 4e-5  # float32 BatchNorm running statistics
    kernels = [k for k, _ in jax.tree_util.tree_flatten_with_path(plain32[1])[0] if "kernel" in jax.tree_util.keystr(k)]
    assert kernels
    for path in kernels:  # the conv and classifier kernel gradients (no cancelling BN-scale sums)
        a, b = (dict(jax.tree_util.tree_flatten_with_path(t[1])[0])[path] for t in (fast32, plain32))
        assert _rel(a, b) < 1e-4, jax.tree_util.keystr(path)


def test_bfloat16_operands_run_and_stay_close():
    """bfloat16 conv operands (float32 accumulation and BatchNorm): logits and gradients within bf16 rounding."""
    topology = digitsnet()  # shallow: a deep random net with batch statistics of 8 images amplifies any rounding
    x = jax.random.uniform(jax.random.key(1), (8, *topology.input_shape))
    y = jnp.arange(8) % 10
    bf = _loss_and_grads(topology, "float", True, jnp.float32, x, y, "bfloat16")
    f32 = _loss_and_grads(topology, "float", True, jnp.float32, x, y)
    assert bf[0].dtype == jnp.float32 and all(a.dtype == jnp.float32 for a in jax.tree.leaves(bf[1]))
    assert 1e-4 < _rel(bf[0], f32[0]) < 2e-2  # rounded (0.5 % here), but close
    grads = jax.tree_util.tree_flatten_with_path(bf[1])[0]
    kernels = [(a, b) for (path, a), b in zip(grads, jax.tree.leaves(f32[1])) if "kernel" in jax.tree_util.keystr(path)]
    assert len(kernels) == 8
    # bfloat16 gradients at initialization (through batch statistics of 8 images) are 1-15 % off
    assert all(_rel(a, b) < 0.3 for a, b in kernels)
    with pytest.raises(ValueError, match="compute_dtype: expected one of float32, bfloat16, got 'float16'"):
        QNet(topology, "float", compute_dtype="float16", rngs=nnx.Rngs(0))


def test_dw_impl_by_backend():
    assert default_dw_impl("cpu") == "taps"
    assert default_dw_impl("gpu") == "grouped" and default_dw_impl("tpu") == "grouped"
    assert resolve_dw_impl("grouped") == "grouped"
    with pytest.raises(ValueError, match="dw_impl: expected one of auto, taps, grouped, got 'fft'"):
        resolve_dw_impl("fft")
