"""DORY's L2->L1 tile choice, re-implemented as an exhaustive search over its constraint problem.

DORY (Burrello et al., IEEE TC 2021) solves a small constraint program per layer (``tiler_conv2d.py``): the tile
must fit the L1 budget with every buffer double-buffered, sub-byte channel tiles must be whole bytes, and among
the feasible tiles it *maximizes* a weighted objective that prefers output rows in multiples of 8 (one per core),
even widths (pixel pairs), output channels in multiples of 4 (the 4x2 kernel blocking), and then the largest
channel tile and the fullest L1. The search here enumerates the same variables with numpy and applies the same
objective, so the often thin tiles that DORY really produces are reproduced (Free Bits, arXiv 2307.02894, uses
DORY for deployment).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from fb_schema import LayerType

DB = 2  # double buffering of every L1 buffer [C] DORY tiler.py


class TilingError(ValueError):
    """No tile of the layer fits the L1 budget."""


@dataclass(frozen=True)
class Tile:
    """Output tile (n_out channels x h_out rows x w_out columns) and its input tile."""

    n_out: int
    h_out: int
    w_out: int
    n_in: int
    h_in: int
    w_in: int
    mem: int

    def counts(self, c_out: int, h_out: int, w_out: int) -> tuple[int, int, int]:
        """Number of tiles along channels, rows and columns of a layer with the given output shape."""
        return -(-c_out // self.n_out), -(-h_out // self.h_out), -(-w_out // self.w_out)


def _nbytes(elements, bits: int):
    return (elements * bits + 7) // 8


def _in_extent(out, full_out: int, full_in: int, k: int, s: int):
    """Input rows (columns) a tile of ``out`` output rows reads; a full tile reads the whole (unpadded) input."""
    ext = np.minimum((out - 1) * s + k, full_in)
    return np.where(out == full_out, full_in, ext)


@lru_cache(maxsize=4096)
def tile_layer(lt: LayerType, a: int, w: int, o: int, l1_budget: int, bn_bits: int = 32) -> Tile:
    """DORY's tile for ``lt`` at input/weight/output bits (a, w, o) under ``l1_budget`` bytes of L1.

    Raises:
        TilingError: when not even the smallest tile fits.
    """
    if lt.op in ("conv2d", "linear"):
        return _tile_conv(lt, a, w, o, l1_budget, bn_bits)
    if lt.op == "depthwise_conv2d":
        return _tile_dw(lt, a, w, o, l1_budget, bn_bits)
    return _tile_elementwise(lt, a, o, l1_budget)


def _tile_conv(lt: LayerType, a: int, w: int, o: int, budget: int, bn_bits: int) -> Tile:
    kh, kw = lt.kernel
    sh, sw = lt.stride
    (H, W), C, K = lt.out_hw, lt.out_ch, lt.in_ch
    step = 8 // min(a, o, w)
    im2col = 0 if lt.op == "linear" else 2 * 8 * kh * kw * K  # 8-bit buffer, one pixel pair per core
    per_n = DB * _nbytes(K * kh * kw, w) + DB * 2 * bn_bits // 8  # weights + k/lambda per output channel
    full = per_n * C + im2col + DB * _nbytes(lt.in_h * lt.in_w * K, a) + DB * _nbytes(H * W * C, o) + 40
    if full <= budget:
        return Tile(C, H, W, K, lt.in_h, lt.in_w, full)
    n = np.arange(step, C + 1, step)
    if n.size == 0 or n[-1] != C:
        n = np.append(n, C)
    n = n[per_n * n + im2col + 40 < budget]
    if n.size == 0:
        raise TilingError(f"{lt.key}: no channel tile fits the {budget} B L1 budget at a{a}/w{w}/o{o}")
    h = np.arange(1, H + 1)
    wo = np.arange(1, W + 1)
    h_in = _in_extent(h, H, lt.in_h, kh, sh)
    w_in = _in_extent(wo, W, lt.in_w, kw, sw)
    in_mem = DB * _nbytes(h_in[:, None] * w_in[None, :] * K, a)  # (h, w)
    fixed = per_n * n + im2col + 40  # (n,)
    # Feasible (n, h, w): weights + im2col + input tile + output tile fit.
    rem = budget - fixed[:, None, None] - in_mem[None, :, :]
    out_mem = DB * _nbytes(n[:, None, None] * (h[:, None] * wo[None, :])[None, :, :], o)
    ni, hi, wi = np.nonzero(out_mem <= rem)
    if ni.size == 0:
        raise TilingError(f"{lt.key}: no tile fits the {budget} B L1 budget at a{a}/w{w}/o{o}")
    tn, th, tw = n[ni], h[hi], wo[wi]
    mem = budget - rem[ni, hi, wi] + out_mem[ni, hi, wi]
    obj = (
        2e6 * ((th - 1) % 8)
        + 3e6 * ((tw - 1) % 2)
        + 1e6 * ((tn - 1) % 4)
        + 1e6 * (th * tw >= 16)
        + mem
        + 1e5 * tn
        + 1e4 * ((C - 1) % tn)
        + 1e4 * (((C - 1) % tn) % 4)
        + 2e4 * (((H - 1) % th) % 8)
        + 3e4 * (((W - 1) % tw) % 2)
    )
    best = int(np.argmax(obj))
    bh, bw = int(th[best]), int(tw[best])
    return Tile(int(tn[best]), bh, bw, K, int(h_in[bh - 1]), int(w_in[bw - 1]), int(mem[best]))


def _tile_dw(lt: LayerType, a: int, w: int, o: int, budget: int, bn_bits: int) -> Tile:
    kh, kw = lt.kernel
    sh, _ = lt.stride
    (H, W), C = lt.out_hw, lt.out_ch
    step = 8 // min(a, o, w)
    pad = lt.padding[0] + lt.padding[2]
    n = np.arange(step, C + 1, step)
    if n.size == 0 or n[-1] != C:
        n = np.append(n, C)
    h = np.array([H]) if (lt.in_h <= 32 and lt.in_w <= 32) else np.arange(1, H + 1)
    h_in = _in_extent(h, H, lt.in_h, kh, sh)
    wbuf = DB * 8 * 8 * kh * kw * (8 // min(a, o, w)) if w != 8 else 0  # unpacked-weight buffer
    im2col = 8 * (kw * (lt.in_h + pad) + kw) * (8 // min(a, o, w))
    per_n = DB * _nbytes(kh * kw, w) + DB * 2 * bn_bits // 8
    nn, hh = n[:, None], h[None, :]
    mem = (
        DB * _nbytes(nn * h_in[None, :] * lt.in_w, a)
        + DB * _nbytes(nn * hh * W, o)
        + per_n * nn
        + im2col
        + wbuf
        + 40
        + 0 * hh
    )
    ni, hi = np.nonzero(mem <= budget)
    if ni.size == 0:
        raise TilingError(f"{lt.key}: no depthwise tile fits the {budget} B L1 budget at a{a}/w{w}/o{o}")
    tn, th, m = n[ni], h[hi], mem[ni, hi]
    obj = (
        1e4 * (tn > 7)
        + 2e4 * ((tn - 1) % 16)
        + 1e4 * (th % 4 == 0)
        + m
        + 1e3 * W
        + 1e3 * th
        + 1e2 * ((H - 1) % th)
        + 1e2 * (((C - 1) % tn) > 7)
        + 1e2 * (((H - 1) % th) % 4)
    )
    best = int(np.argmax(obj))
    bh = int(th[best])
    return Tile(int(tn[best]), bh, W, int(tn[best]), int(h_in[int(hi[best])]), lt.in_w, int(m[best]))


def _tile_elementwise(lt: LayerType, a: int, o: int, budget: int) -> Tile:
    """Add / average / max pool: full channels and width, as many rows as fit (two inputs for add)."""
    n_inputs = 2 if lt.op == "add" else 1
    H, W = lt.out_hw
    C = lt.in_ch
    if lt.op == "avgpool":  # global pool: the whole map is one output pixel per channel
        per_c = DB * (_nbytes(lt.in_h * lt.in_w, a) + _nbytes(H * W, o))
        n_out = max(1, min(C, (budget - 40) // max(per_c, 1)))
        return Tile(n_out, H, W, n_out, lt.in_h, lt.in_w, per_c * n_out + 40)
    if lt.op == "maxpool":  # output rows read stride rows of the input each (plus the window's halo, below)
        per_row = DB * (lt.stride[0] * _nbytes(lt.in_w * C, a) + _nbytes(W * C, o))
        budget -= DB * max(lt.kernel[0] - lt.stride[0], 0) * _nbytes(lt.in_w * C, a)
    else:
        per_row = DB * (n_inputs * _nbytes(W * C, a) + _nbytes(W * C, o))
    rows = (budget - 40) // per_row
    if rows < 1:
        raise TilingError(f"{lt.key}: one row of the {lt.op} does not fit the {budget} B L1 budget")
    rows = min(rows, H)
    if lt.op == "maxpool":
        h_in = min((rows - 1) * lt.stride[0] + lt.kernel[0], lt.in_h)
        return Tile(C, rows, W, C, h_in, lt.in_w, per_row * rows + 40)
    return Tile(C, rows, W, C, rows, W, per_row * rows + 40)
