"""Training kernels for XLA:CPU, each with a hand-written backward pass that touches memory as few times as it can.

* :func:`depthwise_taps`: a depthwise conv as ``kh*kw`` shifted multiply-adds. Autodiff of that formulation keeps
  every shifted input patch for the weight gradient (nine copies of the input per layer, written and read
  again); the custom VJP keeps only the padded input, computes the input gradient as one fused pass over the
  (interior-padded) output gradient and the weight gradient as one fused reduction with an output per tap.
* :func:`pointwise`: a 1x1 conv as one ``dot_general`` on the ``(N*H*W, C)`` view, so that neither the forward
  nor the backward pass has layout transposes around the conv kernel.
* :func:`batch_norm_act`: training-mode BatchNorm (batch statistics, ``var = E[x^2] - E[x]^2`` as Flax computes
  them) fused with ReLU6; the backward pass is two reductions and one elementwise pass that recomputes the
  normalized input instead of storing it.

XLA recomputes an elementwise producer inside every fusion that reads it. Where a value is read many times (the
output gradient by the nine taps of the input gradient and by the weight gradient) it is computed once into a
buffer of its own: the operand of a conditional (:func:`_materialize`). ``optimization_barrier`` does not do
this on XLA:CPU, which removes barriers before fusion.

XLA:CPU's grouped conv (and its backward) is several times slower than the taps, while on GPU/TPU it is the
fast form: :func:`resolve_dw_impl` picks by backend. ``compute_dtype="bfloat16"`` casts the conv operands only;
the products accumulate and BatchNorm runs in float32.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

DW_IMPLS = ("auto", "taps", "grouped")
COMPUTE_DTYPES = ("float32", "bfloat16")


def default_dw_impl(backend: str | None = None) -> str:
    """``taps`` on CPU (XLA:CPU's grouped conv is slow), ``grouped`` on GPU/TPU."""
    return "taps" if (backend or jax.default_backend()) == "cpu" else "grouped"


def resolve_dw_impl(impl: str) -> str:
    """``impl`` checked, with ``auto`` resolved for the current backend."""
    if impl not in DW_IMPLS:
        raise ValueError(f"dw_impl: expected one of {', '.join(DW_IMPLS)}, got {impl!r}")
    return default_dw_impl() if impl == "auto" else impl


def check_compute_dtype(dtype: str) -> str:
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"compute_dtype: expected one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    return dtype


def _out_size(n: int, k: int, s: int, lo: int, hi: int) -> int:
    return (n + lo + hi - k) // s + 1


def _patch(xp: jax.Array, i: int, j: int, stride: tuple[int, int], oh: int, ow: int) -> jax.Array:
    limit = (xp.shape[0], i + stride[0] * (oh - 1) + 1, j + stride[1] * (ow - 1) + 1, xp.shape[3])
    return jax.lax.slice(xp, (0, i, j, 0), limit, (1, stride[0], stride[1], 1))


def _pad(x: jax.Array, padding: tuple[int, ...]) -> jax.Array:
    t, l, b, r = padding
    return jnp.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))


def _taps_padded(xp: jax.Array, w: jax.Array, stride: tuple[int, int], out_hw: tuple[int, int]) -> jax.Array:
    acc = _acc(xp)  # bfloat16 operands: products and sums in float32
    out = None
    for i in range(w.shape[0]):
        for j in range(w.shape[1]):
            term = _patch(xp, i, j, stride, *out_hw).astype(acc) * w[i, j, 0].astype(acc)
            out = term if out is None else out + term
    return out


def _dw_out_hw(x, w, stride, padding) -> tuple[int, int]:
    t, l, b, r = padding
    return _out_size(x.shape[1], w.shape[0], stride[0], t, b), _out_size(x.shape[2], w.shape[1], stride[1], l, r)


def depthwise_taps_autodiff(x: jax.Array, w: jax.Array, stride: tuple[int, int], padding: tuple[int, ...]) -> jax.Array:
    """:func:`depthwise_taps` differentiated by JAX itself (the unfused kernels' form)."""
    return _taps_padded(_pad(x, padding), w, stride, _dw_out_hw(x, w, stride, padding))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def depthwise_taps(x: jax.Array, w: jax.Array, stride: tuple[int, int], padding: tuple[int, ...]) -> jax.Array:
    """Depthwise conv (NHWC, kernel ``(kh, kw, 1, C)``, padding ``(top, left, bottom, right)``) as shifted taps."""
    return _taps_padded(_pad(x, padding), w, stride, _dw_out_hw(x, w, stride, padding))


def _dw_fwd(x, w, stride, padding):
    xp = _pad(x, padding)  # written once; the forward taps and the weight gradient both read it
    return _taps_padded(xp, w, stride, _dw_out_hw(x, w, stride, padding)), (xp, w)


def _materialize(a: jax.Array, like: jax.Array) -> jax.Array:
    """``a``, computed once into a buffer (a conditional's operand) instead of inside each fusion that reads it.

    The predicate is false only where ``like`` (a scalar the result already depends on) is NaN, and then the
    result is NaN; XLA cannot fold it, and a conditional whose branches are both the identity it would remove.
    On XLA:CPU only, where it was measured: GPU/TPU compilers fuse by other rules, and a conditional there can
    wait for its predicate on the host.
    """
    if jax.default_backend() != "cpu":
        return a
    return jax.lax.cond(like == like, lambda v: v, lambda v: jnp.full_like(v, jnp.nan), a)


def _dw_bwd(stride, padding, res, g):
    xp, w = res
    t, l, b, r = padding
    kh, kw = w.shape[:2]
    h, wd, c = xp.shape[1] - t - b, xp.shape[2] - l - r, xp.shape[3]
    oh, ow = g.shape[1:3]
    taps = [(i, j) for i in range(kh) for j in range(kw)]
    # g is usually BatchNorm's backward pass; the nine taps below and the weight gradient would each recompute it
    g = _materialize(g, w[0, 0, 0, 0])
    gw = _dw_weight_grad(xp, g, (kh, kw), stride).reshape(kh, kw, 1, c).astype(w.dtype)
    # tap (i, j) sends g * w_ij to input rows s*o + i - t: the interior-padded (dilated) g shifted by (i - t, j - l)
    # and cropped to the input; all taps sum in one fused loop
    gx = None
    for i, j in taps:
        lo_h, lo_w = i - t, j - l
        hi_h, hi_w = h - (lo_h + stride[0] * (oh - 1) + 1), wd - (lo_w + stride[1] * (ow - 1) + 1)
        cfg = ((0, 0, 0), (lo_h, hi_h, stride[0] - 1), (lo_w, hi_w, stride[1] - 1), (0, 0, 0))
        term = jax.lax.pad(g * w[i, j, 0].astype(g.dtype), jnp.zeros((), g.dtype), cfg)
        gx = term if gx is None else gx + term
    return gx.astype(xp.dtype), gw


depthwise_taps.defvjp(_dw_fwd, _dw_bwd)


def _dw_weight_grad(xp, g, kernel, stride) -> jax.Array:
    """``(kh*kw, C)`` sums over the batch of tap patches times ``g``: one variadic reduction, an output per tap.

    Nine separate sums would write the nine patch products first (see :func:`sums_in_one_pass`; a batch-chunked
    ``scan`` kept them in cache, at the cost of a copy of the padded input for the loop).
    """
    oh, ow = g.shape[1:3]
    acc = _acc(xp)
    prods = [_patch(xp, i, j, stride, oh, ow).astype(acc) * g.astype(acc)
             for i in range(kernel[0]) for j in range(kernel[1])]  # fmt: skip
    return jnp.stack(sums_in_one_pass(prods, (0, 1, 2)))


def sums_in_one_pass(terms: list[jax.Array], dims: tuple[int, ...]) -> tuple[jax.Array, ...]:
    """``sum(term, dims)`` of every term (one shape and dtype), as one variadic reduction.

    XLA:CPU hands a reduction of one operand to YNNPACK, which reads that operand from memory, so an elementwise
    term is written out first; a reduction of several operands is XLA's own loop, which computes the terms as it
    reads their inputs.
    """
    zeros = [jnp.zeros((), terms[0].dtype)] * len(terms)
    return tuple(jax.lax.reduce(terms, zeros, lambda a, b: tuple(u + v for u, v in zip(a, b)), dims))


def pointwise(x: jax.Array, w: jax.Array) -> jax.Array:
    """1x1 conv, stride 1 (NHWC, kernel ``(1, 1, Cin, Cout)``) as a matrix product on the ``(N*H*W, Cin)`` view;
    float32 accumulation whatever the operand dtype."""
    n, h, wd, c = x.shape
    dims = (((1,), (0,)), ((), ()))
    y = jax.lax.dot_general(
        x.reshape(n * h * wd, c), w.reshape(c, -1), dims, preferred_element_type=jnp.promote_types(x.dtype, jnp.float32)
    )
    return y.reshape(n, h, wd, w.shape[3])


def _acc(x: jax.Array):
    return jnp.promote_types(x.dtype, jnp.float32)


def _act(y: jax.Array, act: str) -> jax.Array:
    if act == "relu6":
        return jnp.clip(y, 0.0, 6.0)
    return jnp.maximum(y, 0.0) if act == "relu" else y


def _stats(x: jax.Array) -> tuple[jax.Array, jax.Array]:
    axes = tuple(range(x.ndim - 1))
    mean = jnp.mean(x, axes)
    var = jnp.maximum(0.0, jnp.mean(jnp.square(x), axes) - jnp.square(mean))
    return mean, var


@functools.partial(jax.custom_vjp, nondiff_argnums=(3, 4))
def _bn_act(x, scale, bias, eps: float, act: str):
    return _bn_fwd(x, scale, bias, eps, act)[0]


def _bn_fwd(x, scale, bias, eps, act):
    mean, var = _stats(x)
    # Flax's expression and rounding; short, because XLA recomputes it inside each consumer it fuses into (the nine
    # taps of the next depthwise conv)
    y = (x - mean) * (jax.lax.rsqrt(var + eps) * scale) + bias
    return (_act(y, act), mean, var), (x, scale, bias, mean, var)


def _bn_bwd(eps, act, res, cts):
    x, scale, bias, mean, var = res
    g = cts[0]  # the statistics only feed the running averages: no gradient flows back through them
    inv = jax.lax.rsqrt(var + eps)
    k1 = scale * inv
    if act != "none":
        y = (x - mean) * k1 + bias
        g = jnp.where((y > 0.0) & (y < 6.0) if act == "relu6" else y > 0.0, g, 0.0)
    axes = tuple(range(x.ndim - 1))
    m = x.size // x.shape[-1]
    gbias = jnp.sum(g, axes)
    # = sum(g * xhat): sum(g * x) reads two buffers that exist anyway (sum(g * (x - mean)) wrote x - mean first)
    gscale = (jnp.sum(g * x, axes) - mean * gbias) * inv
    # gx = scale * inv / m * (m * g - gbias - xhat * gscale), as few operations per element as it can
    k2 = -k1 * inv * gscale / m
    return g * k1 + (x - mean) * k2 - k1 * gbias / m, gscale, gbias


_bn_act.defvjp(_bn_fwd, _bn_bwd)


def batch_norm_act(
    x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float, act: str = "none"
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Training-mode BatchNorm over all but the last axis, then ``act`` (``relu6``, ``relu`` or ``none``).

    Returns:
      (output, batch mean, biased batch variance); the statistics carry no gradient.
    """
    y, mean, var = _bn_act(x, scale, bias, eps, act)
    return y, jax.lax.stop_gradient(mean), jax.lax.stop_gradient(var)
