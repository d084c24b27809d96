"""Quantized building blocks: ``QConv`` (regular and depthwise), ``QLinear``, ``QAdd``, ``QPool``, ``QMaxPool``.

Each configurable block carries the quantizer of its input activation (``in_q``) and of its weights (``w_q``), so
users can write their own quantized networks::

    conv = QConv(LayerType.conv2d(16, 16, 1, 8, 3, 1), in_q=FixedQuant(8, False, False, 1.0),
                 w_q=BBQuant(True, True), rngs=nnx.Rngs(0))
    y = conv(x, key)            # quantize x, quantize the kernel, conv, BatchNorm, ReLU6

Conventions as in fb_schema: explicit padding, HWIO kernels (depthwise ``(kh, kw, 1, C)``), BN after every conv
without a bias (momentum 0.9, eps 1e-5 = PyTorch's 0.1), no BN after a conv with a bias (an imported conv with BN
folded in), a biased classifier. Activations: ``relu`` (unbounded; the next quantizer clips it), ``relu6``,
``none`` -- applied identically in every mode, also after a residual add. Depthwise convs are computed as
``kh*kw`` shifted multiply-adds ("taps", the fast form on XLA:CPU) or as a grouped conv (GPU/TPU, export); both
use the same parameters. Training uses the kernels of :mod:`fb_search._ops` (``fast``); export uses plain convs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from fb_schema import LayerType
from fb_search._ops import (
    batch_norm_act,
    check_compute_dtype,
    depthwise_taps,
    depthwise_taps_autodiff,
    pointwise,
    resolve_dw_impl,
)
from fb_search.quant import Quantizer

__all__ = ["QAdd", "QConv", "QLinear", "QMaxPool", "QPool", "activation", "conv_nhwc", "depthwise_taps", "relu6"]

BN_MOMENTUM, BN_EPS = 0.9, 1e-5


def relu6(x: jax.Array) -> jax.Array:
    """``min(max(x, 0), 6)``."""
    return jnp.clip(x, 0.0, 6.0)


def activation(x: jax.Array, act: str) -> jax.Array:
    """``relu``, ``relu6`` or ``none`` (identity)."""
    if act == "relu":
        return jnp.maximum(x, 0.0)
    return relu6(x) if act == "relu6" else x


def conv_nhwc(x: jax.Array, w: jax.Array, lt: LayerType, dw_impl: str = "auto", fast: bool = False) -> jax.Array:
    """The convolution of layer type ``lt`` on NHWC input with an HWIO kernel.

    ``dw_impl`` picks the depthwise form (``auto``: by backend, see :func:`fb_search._ops.default_dw_impl`);
    ``fast`` computes 1x1 stride-1 convs as a matrix product and differentiates the depthwise taps by hand
    (training; the ONNX export keeps ``conv_general_dilated`` so that its graph has ``Conv`` nodes).
    """
    if lt.op == "depthwise_conv2d" and resolve_dw_impl(dw_impl) == "taps":
        taps = depthwise_taps if fast else depthwise_taps_autodiff
        return taps(x, w, tuple(lt.stride), tuple(lt.padding))
    if fast and _is_pointwise(lt):
        return pointwise(x, w)
    t, l, b, r = lt.padding
    return jax.lax.conv_general_dilated(
        x,
        w,
        window_strides=tuple(lt.stride),
        padding=((t, b), (l, r)),
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=lt.groups,
        preferred_element_type=jnp.promote_types(x.dtype, jnp.float32),
    )


def _is_pointwise(lt: LayerType) -> bool:
    return lt.groups == 1 and tuple(lt.kernel) == (1, 1) and tuple(lt.stride) == (1, 1) and not any(lt.padding)


def _split(key: jax.Array | None) -> tuple[jax.Array | None, jax.Array | None]:
    return (None, None) if key is None else tuple(jax.random.split(key))


class QConv(nnx.Module):
    """Quantized conv (regular or depthwise) + BatchNorm + activation (``relu6`` or ``none``).

    Args:
      lt: the layer type (``conv2d`` or ``depthwise_conv2d``).
      in_q: quantizer of the input activation (None: the input arrives quantized).
      w_q: quantizer of the kernel.
      act: ``relu``, ``relu6`` or ``none``.
      dw_impl: ``auto`` (by backend: ``taps`` on CPU, ``grouped`` on GPU/TPU), ``taps`` or ``grouped``
        (depthwise only; same parameters).
      compute_dtype: ``float32`` or ``bfloat16`` for the conv operands (products accumulate, BatchNorm,
        quantizers and parameters stay in float32).
      rngs: initializers.
      use_bias: a conv bias instead of BatchNorm (imported convs with BN folded in).

    ``fast`` (attribute of the same name) selects the training kernels of :mod:`fb_search._ops` (pointwise convs
    as matrix products, hand-differentiated depthwise taps, training-mode BatchNorm fused with the activation):
    faster on large activations, equal to the plain kernels up to float32 rounding; the ONNX export switches it
    off.
    """

    def __init__(
        self,
        lt: LayerType,
        in_q: Quantizer | None,
        w_q: Quantizer,
        act: str = "relu6",
        dw_impl: str = "auto",
        compute_dtype: str = "float32",
        *,
        rngs: nnx.Rngs,
        use_bias: bool = False,
        fast: bool = False,
    ):
        if lt.op not in ("conv2d", "depthwise_conv2d"):
            raise ValueError(f"QConv: expected a conv2d or depthwise_conv2d layer type, got {lt.op}")
        resolve_dw_impl(dw_impl)
        self.lt, self.act, self.dw_impl, self.fast = lt, act, dw_impl, fast
        self.compute_dtype = check_compute_dtype(compute_dtype)
        shape = lt.weight_shape_hwio
        init = nnx.initializers.variance_scaling(2.0, "fan_in", "truncated_normal", in_axis=(0, 1, 2), out_axis=3)
        self.kernel = nnx.Param(init(rngs.params(), shape, jnp.float32))
        if use_bias:
            self.bias = nnx.Param(jnp.zeros((lt.out_ch,), jnp.float32))
            self.bn = None
        else:
            self.bn = nnx.BatchNorm(lt.out_ch, momentum=BN_MOMENTUM, epsilon=BN_EPS, rngs=rngs)
        self.in_q, self.w_q = in_q, w_q

    def core(self, xq: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """The layer on an already quantized input."""
        wq = self.w_q(self.kernel[...], key)
        if self.compute_dtype == "float32":
            y = conv_nhwc(xq, wq, self.lt, self.dw_impl, self.fast)
        else:  # low-precision operands, float32 products' sums, BatchNorm and activations
            dt = self.compute_dtype
            y = conv_nhwc(xq.astype(dt), wq.astype(dt), self.lt, self.dw_impl, self.fast).astype(jnp.float32)
        bn = self.bn
        if bn is None:
            return activation(y + self.bias[...], self.act)
        if self.fast and not bn.use_running_average:
            y, mean, var = batch_norm_act(y, bn.scale[...], bn.bias[...], bn.epsilon, self.act)
            bn.mean[...] = bn.momentum * bn.mean[...] + (1 - bn.momentum) * mean
            bn.var[...] = bn.momentum * bn.var[...] + (1 - bn.momentum) * var
            return y
        return activation(bn(y), self.act)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        ka, kw = _split(key)
        return self.core(x if self.in_q is None else self.in_q(x, ka), kw)


class QLinear(nnx.Module):
    """Quantized fully connected layer with bias (flattens its input); no BN, output unquantized (logits)."""

    def __init__(self, lt: LayerType, in_q: Quantizer | None, w_q: Quantizer, act: str = "none", *, rngs: nnx.Rngs):
        if lt.op != "linear":
            raise ValueError(f"QLinear: expected a linear layer type, got {lt.op}")
        self.lt, self.act = lt, act
        init = nnx.initializers.lecun_normal()
        self.kernel = nnx.Param(init(rngs.params(), (lt.in_ch, lt.out_ch), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((lt.out_ch,), jnp.float32))
        self.in_q, self.w_q = in_q, w_q

    def core(self, xq: jax.Array, key: jax.Array | None = None) -> jax.Array:
        y = xq.reshape(xq.shape[0], -1) @ self.w_q(self.kernel[...], key) + self.bias[...]
        return activation(y, self.act)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        ka, kw = _split(key)
        return self.core(x if self.in_q is None else self.in_q(x, ka), kw)


class QAdd(nnx.Module):
    """Residual add of two quantized tensors, then ``act`` (ResNet's post-add ReLU); its output is re-quantized
    by ``out_q`` (8 bits in the paper)."""

    def __init__(self, lt: LayerType, out_q: Quantizer | None = None, act: str = "none"):
        self.lt, self.out_q, self.act = lt, out_q, act

    def core(self, a: jax.Array, b: jax.Array) -> jax.Array:
        return activation(a + b, self.act)

    def __call__(self, a: jax.Array, b: jax.Array, key: jax.Array | None = None) -> jax.Array:
        y = self.core(a, b)
        return y if self.out_q is None else self.out_q(y, key)


class QPool(nnx.Module):
    """Global average pool (NHWC -> N,1,1,C); its output is quantized by its consumer."""

    def __init__(self, lt: LayerType, act: str = "none"):
        self.lt, self.act = lt, act

    def core(self, x: jax.Array) -> jax.Array:
        return activation(jnp.mean(x, axis=(1, 2), keepdims=True), self.act)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return self.core(x)


class QMaxPool(nnx.Module):
    """Max pooling (NHWC, padding with -inf). Its input and output share one quantization grid: max commutes
    with a monotone quantizer, so the integer network pools the producer's integers unchanged."""

    def __init__(self, lt: LayerType):
        self.lt = lt

    def core(self, x: jax.Array) -> jax.Array:
        t, l, b, r = self.lt.padding
        return jax.lax.reduce_window(
            x,
            -jnp.inf,
            jax.lax.max,
            (1, *self.lt.kernel, 1),
            (1, *self.lt.stride, 1),
            ((0, 0), (t, b), (l, r), (0, 0)),
        )

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return self.core(x)
