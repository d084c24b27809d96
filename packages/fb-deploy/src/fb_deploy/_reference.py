"""Bit-exact integer reference executor (numpy, int64, floor semantics) over an IntegerNetwork.

It is the golden model of the export: DORY's ``out_layer{i}.txt`` files come from here, and the ONNX Runtime
twin must reproduce it bit for bit. Products are summed in float64, which is exact far beyond the int32
accumulators that the integerization proves (|acc| < 2^31 << 2^53).
"""

from __future__ import annotations

import numpy as np

from fb_deploy._integer_network import IntegerNetwork, IntLayer, grid


def run_reference(int_net: IntegerNetwork, x_uint8_nhwc: np.ndarray) -> np.ndarray:
    """Integer logits (int64, ``[N, classes]``) for integer input images (``[N,H,W,C]`` or ``[H,W,C]``).

    Example:
        >>> logits = run_reference(int_net, np.zeros((1, 8, 8, 1), np.uint8))  # doctest: +SKIP
    """
    return run_layers(int_net, x_uint8_nhwc)[int_net.output]


def integer_logits(int_net: IntegerNetwork, x_real_nhwc: np.ndarray) -> np.ndarray:
    """The integer network's logits in real units for real inputs: what a deployed network scores.

    The inputs go onto the network's input grid as the fake-quant model rounds them
    (:meth:`IntegerNetwork.quantize_input`, signed or unsigned), the integer network runs bit-exactly, and each
    class's int32 accumulator is multiplied by the real value of its LSB (``logit_scale``).

    Example:
        >>> logits = integer_logits(int_net, images)  # doctest: +SKIP
        >>> accuracy = (logits.argmax(-1) == labels).mean()  # doctest: +SKIP
    """
    return run_reference(int_net, int_net.quantize_input(x_real_nhwc)) * int_net.logit_scale


def run_layers(int_net: IntegerNetwork, x_nhwc: np.ndarray) -> dict[str, np.ndarray]:
    """Every tensor of the network (int64, NHWC; the classifier output ``[N, classes]``)."""
    x = np.asarray(x_nhwc)
    if x.ndim == 3:
        x = x[None]
    expected = tuple(int_net.input_shape_nhwc[1:])
    if x.shape[1:] != expected:
        raise ValueError(f"input: shape [N, {', '.join(map(str, expected))}] expected, got {list(x.shape)}")
    lo, hi = grid(int_net.input_bits, int_net.input_signed)
    x = x.astype(np.int64)
    if x.min() < lo or x.max() > hi:
        raise ValueError(f"input: integers in [{lo}, {hi}] expected")
    values = {int_net.input_tensor: x}
    for layer in int_net.layers:
        values[layer.output] = run_layer(layer, [values[t] for t in layer.inputs])
    return values


def run_layer(layer: IntLayer, xs: list[np.ndarray]) -> np.ndarray:
    """One fused layer on int64 NHWC inputs."""
    lo, hi = grid(layer.out_bits, layer.out_signed)
    if layer.op == "add":
        (m1, a1, s1), (m2, a2, s2), (mo, ao, so) = layer.add_rq
        t = [
            np.clip((x * m + a) >> s, *grid(8, signed))
            for x, (m, a, s), signed in zip(xs, ((m1, a1, s1), (m2, a2, s2)), layer.in_signed)
        ]
        return np.clip(((t[0] + t[1]) * mo + ao) >> so, lo, hi)
    if layer.op == "maxpool":
        lt = layer.layer_type
        t, l, b, r = lt.padding
        x = np.pad(xs[0], ((0, 0), (t, b), (l, r), (0, 0)), constant_values=np.iinfo(np.int64).min)
        return window_max(x, lt.kernel, lt.stride)
    if layer.op == "avgpool":
        lt = layer.layer_type
        ks = lt.kernel[0] * lt.kernel[1]
        acc = window_sum(xs[0], lt.kernel, lt.stride)
        return np.clip((acc * (int(layer.mul) // ks) + int(layer.add)) >> layer.shift, lo, hi)
    if layer.op == "linear":
        x = xs[0].reshape(len(xs[0]), -1).astype(np.float64)
        acc = _exact(x @ layer.weight.astype(np.float64))
    else:
        acc = conv_int(xs[0], layer.weight, layer.layer_type)
    if layer.bias is not None:
        acc = acc + layer.bias
    if layer.mul is None:
        return acc
    return np.clip((acc * layer.mul + layer.add) >> layer.shift, lo, hi)


def conv_int(x: np.ndarray, w: np.ndarray, lt) -> np.ndarray:
    """Convolution of int64 NHWC ``x`` with HWIO ``w`` (depthwise: ``kh,kw,1,C``), exact int64 result."""
    return _exact(conv_float(x, w, lt))


def conv_float(x: np.ndarray, w: np.ndarray, lt) -> np.ndarray:
    """Convolution in float64 of NHWC ``x`` with HWIO ``w`` as the layer type ``lt`` describes."""
    t, l, b, r = lt.padding
    xp = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0))).astype(np.float64)
    oh, ow = lt.out_hw
    wf = w.astype(np.float64)
    out = np.zeros((x.shape[0], oh, ow, lt.out_ch))
    for i, j, patch in _taps(xp, lt.kernel, lt.stride):
        out += patch * wf[i, j, 0] if lt.op == "depthwise_conv2d" else patch @ wf[i, j]
    return out


def window_sum(x: np.ndarray, kernel, stride) -> np.ndarray:
    """The sum over every (unpadded) ``kernel`` window of NHWC ``x``, in ``x``'s dtype."""
    taps = _taps(x, kernel, stride)
    out = np.zeros(taps[0][2].shape, x.dtype)
    for _, _, patch in taps:
        out += patch
    return out


def window_max(x: np.ndarray, kernel, stride) -> np.ndarray:
    """The maximum over every (unpadded) ``kernel`` window of NHWC int64 ``x``."""
    taps = _taps(x, kernel, stride)
    out = np.full(taps[0][2].shape, np.iinfo(np.int64).min, np.int64)
    for _, _, patch in taps:
        out = np.maximum(out, patch)
    return out


def _taps(x: np.ndarray, kernel, stride) -> list[tuple[int, int, np.ndarray]]:
    """For each kernel offset ``(i, j)``, the strided view of NHWC ``x`` that it reads at every output position."""
    kh, kw = kernel
    sh, sw = stride
    oh, ow = (x.shape[1] - kh) // sh + 1, (x.shape[2] - kw) // sw + 1
    return [(i, j, x[:, i : i + sh * (oh - 1) + 1 : sh, j : j + sw * (ow - 1) + 1 : sw, :])
            for i in range(kh) for j in range(kw)]  # fmt: skip


def _exact(values: np.ndarray) -> np.ndarray:
    return np.rint(values).astype(np.int64)
