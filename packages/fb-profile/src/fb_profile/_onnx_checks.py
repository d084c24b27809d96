"""Attribute and shape checks of the ONNX converter: explicit or automatic pads, per-channel constants, and
layer types built with the node named in any error."""

from __future__ import annotations

import numpy as np

from fb_schema import LayerType


def per_channel(c: np.ndarray, ch: int, layout: str, where: str) -> np.ndarray:
    """A constant broadcast against a layer output: a scalar, or one value per channel (channel axis: -3 in
    NCHW, -1 in NHWC and for flat outputs)."""
    c = np.asarray(c, np.float64)
    if c.size == 1:
        return np.full(ch, float(c.reshape(-1)[0]))
    axis = -3 if layout == "nchw" else -1
    if c.size == ch and c.ndim >= -axis and c.shape[axis] == ch:
        return c.reshape(-1)
    raise ValueError(f"{where}: a constant of shape {list(c.shape)} is neither a scalar nor per channel ({ch})")


def pads(attrs: dict, hw: tuple[int, int], k: tuple, s: tuple, where: str) -> tuple[int, int, int, int]:
    """(top, left, bottom, right) padding of a Conv or MaxPool from ``pads`` or ``auto_pad``."""
    auto = attrs.get("auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        t, l, b, r = (int(x) for x in attrs.get("pads", (0, 0, 0, 0)))  # x1_begin, x2_begin, x1_end, x2_end
        return (t, l, b, r)
    if auto == "VALID":
        return (0, 0, 0, 0)
    out = []
    for size, kk, ss in zip(hw, k, s):
        total = max((-(-size // ss) - 1) * ss + kk - size, 0)
        small, big = total // 2, total - total // 2
        out.append((small, big) if auto == "SAME_UPPER" else (big, small))
    return (out[0][0], out[1][0], out[0][1], out[1][1])


def pad_list(a: dict, node, consts: dict[str, np.ndarray], where: str) -> list[int]:
    """The eight pads (begins, then ends, of N, C/H, ...) of a ``Pad`` node, which must pad with zeros."""
    mode = a.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    raw = a.get("pads")
    if raw is None and len(node.input) > 1:
        raw = consts.get(node.input[1])
    value = float(consts[node.input[2]].reshape(-1)[0]) if len(node.input) > 2 and node.input[2] else 0.0
    if raw is None or mode != "constant" or value != 0.0:
        raise ValueError(f"{where}: only constant zero padding with constant pads is supported")
    p = [int(x) for x in np.asarray(raw).reshape(-1)]
    if len(p) != 8:
        raise ValueError(f"{where}: expected 4-D pads, got {p}")
    return p


def make_layer_type(where: str, *args) -> LayerType:
    """``LayerType(*args)``, its error prefixed with the node."""
    try:
        return LayerType(*args)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None
