"""Analytical latency of one layer on an 8-core PULP cluster running DORY-generated code with PULP-NN kernels.

The model mirrors what DORY (Burrello et al., IEEE TC 2021) generates for the Free Bits target (Rutishauser,
Conti, Benini, arXiv 2307.02894, Sec. IV): the layer is tiled into L1 (``_tiler``), tiles are double-buffered so
the DMA of the next input / previous output overlaps the current tile's compute, and layers that do not fit the
L2 budget stream weights or activations from L3. Compute per tile follows the PULP-NN(-mixed) kernels: output
rows split over the cores, pixel pairs through im2col, 4x2 register blocks whose inner-loop cost depends on the
ISA and on the (activation, weight) widths, one requantisation call per output.
"""

from __future__ import annotations

from math import ceil

from fb_profile._constants import Constants
from fb_profile._tiler import Tile, TilingError, tile_layer
from fb_schema import LayerType


def _nbytes(elements: int, bits: int) -> int:
    return (elements * bits + 7) // 8


# -- compute ---------------------------------------------------------------------------------------------------
def conv_compute(c: Constants, lt: LayerType, a: int, w: int, o: int, n: int, h: int, cols: int) -> float:
    """Cycles of one conv / pointwise tile of ``n`` output channels x ``h`` rows x ``cols`` columns."""
    K = lt.kernel[0] * lt.kernel[1] * lt.in_ch
    cores = c.n_cores
    if h % cores == 0 or cols == 1:  # rows split over all cores
        rows, width = ceil(h / cores), cols
    else:  # 4 row groups x 2 column halves
        rows, width = ceil(h / (cores // 2)), ceil(cols / 2)
    pairs, odd = divmod(width, 2)
    c_it, m_it = c.inner[(a, w)]
    iters = ceil(K / (m_it // 8))
    c_blk = iters * c_it / c.eta + c.b_blk + c.b_blk_out[o] + (c.mixed_prologue if a > w else 0.0)
    c_im2col = 2 * K * c.im2col[(a, c.mm_bits(a, w))] + c.im2col_call
    c_pair = ceil(n / 4) * c_blk + c_im2col
    c_odd = n * (K * c.odd_cycles_per_mac(a, w) + c.odd_per_channel) + c_im2col / 2
    return rows * (pairs * c_pair + odd * c_odd) + c.kernel_prologue


def dw_compute(c: Constants, lt: LayerType, a: int, w: int, o: int, n: int, h: int, cols: int) -> float:
    """Cycles of one depthwise tile: channels over the cores, a fixed cost per output element."""
    per_out = c.dw_out * (lt.kernel[0] * lt.kernel[1]) / 9 + c.dw_unpack[a] * lt.stride[0] + c.b_blk_out[o] / 8
    wt = lt.kernel[0] * lt.kernel[1] * c.dw_wt_unpack if w != 8 else 0.0
    return ceil(n / c.n_cores) * (h * cols * per_out + wt) + c.kernel_prologue


def linear_compute(c: Constants, lt: LayerType, a: int, w: int, o: int, n: int) -> float:
    """Cycles of one linear tile of ``n`` output neurons (split over the cores)."""
    per_core = ceil(n / c.n_cores)
    return per_core * lt.in_ch * c.linear[(a, w)] / c.eta + per_core * c.odd_per_channel + c.kernel_prologue


def elementwise_compute(c: Constants, lt: LayerType, a: int, n: int, h: int, cols: int) -> float:
    """Cycles of one residual-add, average-pool or max-pool tile."""
    if lt.op == "add":
        return ceil(h * cols * n / c.n_cores) * c.add_elem + c.kernel_prologue
    if lt.op == "maxpool":  # one compare per window element, no requantization
        return ceil(h * cols * n / c.n_cores) * lt.kernel[0] * lt.kernel[1] * c.pool_elem + c.kernel_prologue
    # pulp_nn_avgpool splits the *output rows* over the cores (i_y from start to stop): a global pool (one output
    # row) runs on one core, every channel and window element in turn.
    window = lt.kernel[0] * lt.kernel[1]
    return ceil(h / c.n_cores) * cols * n * (window * c.pool_elem + c.pool_out) + c.kernel_prologue


def tile_compute(c: Constants, lt: LayerType, a: int, w: int | None, o: int, n: int, h: int, cols: int) -> float:
    if lt.op == "conv2d":
        return conv_compute(c, lt, a, w, o, n, h, cols)
    if lt.op == "depthwise_conv2d":
        return dw_compute(c, lt, a, w, o, n, h, cols)
    if lt.op == "linear":
        return linear_compute(c, lt, a, w, o, n)
    return elementwise_compute(c, lt, a, n, h, cols)


def kernel_cycles(lt: LayerType, a: int, w: int | None, c: Constants, o: int = 8) -> float:
    """Kernel-only cycles of the whole layer as one L1 tile (no DMA, no tiling): the peak the kernels reach."""
    H, W = lt.out_hw
    return tile_compute(c, lt, a, w, o, lt.out_ch, H, W)


# -- data movement ---------------------------------------------------------------------------------------------
def _dma(c: Constants, nbytes: float, cmds: float = 1.0) -> float:
    return cmds * c.t_cmd + c.l_dma + nbytes / c.bw_l2l1


def _weight_bytes(lt: LayerType, w: int | None, n: int, c: Constants) -> int:
    if w is None:
        return 0
    per_ch = lt.kernel[0] * lt.kernel[1] * (lt.in_ch // lt.groups)
    return _nbytes(n * per_ch, w) + 2 * n * c.bn_bits // 8


def _splits(total: int, size: int) -> list[tuple[int, int]]:
    """(tile size, count) classes of ``total`` split into tiles of ``size``."""
    full, rest = divmod(total, size)
    return [(size, full)] + ([(rest, 1)] if rest else [])


def l2_cycles(lt: LayerType, a: int, w: int | None, o: int, c: Constants, tile: Tile | None = None) -> float:
    """Cycles of the layer with everything in L2: tiled L2<->L1 DMA overlapped with compute (DORY's L2 template)."""
    tile = tile or tile_layer(lt, a, w or 8, o, c.l1_budget, c.bn_bits)
    H, W = lt.out_hw
    C = lt.out_ch
    nn, nh, nw = tile.counts(C, H, W)
    spatial_tiles = nh * nw
    dw = lt.op == "depthwise_conv2d"
    per_channel_input = dw or lt.op in ("add", "avgpool", "maxpool")  # input channels follow the output channel tile
    inputs = 2 if lt.op == "add" else 1
    total = 0.0
    first = None
    for n, cn in _splits(C, tile.n_out):
        for i, (h, ch) in enumerate(_splits(H, tile.h_out)):
            for j, (cols, cw) in enumerate(_splits(W, tile.w_out)):
                h_in = min(lt.in_h, (h - 1) * lt.stride[0] + lt.kernel[0]) if h != H else lt.in_h
                w_in = min(lt.in_w, (cols - 1) * lt.stride[1] + lt.kernel[1]) if cols != W else lt.in_w
                ch_in = n if per_channel_input else lt.in_ch
                x_bytes = inputs * _nbytes(h_in * w_in * ch_in, a)
                if dw:  # HWC -> CHW transposition: one 2D transfer with 1-byte lines per channel
                    dx = x_bytes * c.dma_1b + c.l_dma
                else:
                    dx = _dma(c, x_bytes)
                y_cmds = ceil(h / c.n_cores) if n < C else 1.0  # 3D copy: one 2D command per row, over the cores
                dy = _dma(c, _nbytes(h * cols * n, o), y_cmds)
                dwt = _dma(c, _weight_bytes(lt, w, n, c), 3) if w is not None else 0.0
                comp = tile_compute(c, lt, a, w, o, n, h, cols)
                count = cn * ch * cw
                if first is None:
                    first = (dx, dwt, dy)
                # The input is re-fetched for every tile unless the whole map is one tile (then it stays in L1).
                dx_next = dx if (spatial_tiles > 1 or per_channel_input) else 0.0
                total += count * (max(comp, dx_next + dy) + c.t_tile_ovh)
                if nn > 1 and i == j == 0:  # the weights change once per channel tile (loop order nof -> h -> w)
                    total += cn * (max(comp, dx_next + dy + dwt) - max(comp, dx_next + dy))
    assert first is not None
    dx0, dw0, dy0 = first
    return c.t_fixed + dx0 + dw0 + dy0 + total


def layer_cycles(lt: LayerType, a: int, w: int | None, c: Constants, o: int = 8) -> int:
    """Cycles DORY's per-layer counter would report for ``lt`` at (a, w) with ``o``-bit outputs.

    Layers whose input + output + weights exceed the L2 budget stream from L3 (HyperRAM): DORY tiles either the
    weights (on output channels) or the activations (on rows), double-buffered against the L2 layer; it cannot
    do both (``tiler_conv2d.py::get_tiling`` exits), which is an error here too.
    """
    t_l2 = l2_cycles(lt, a, w, o, c)
    budget = c.l2_bytes - c.l2_code_reserve
    inputs = 2 if lt.op == "add" else 1
    act = inputs * _nbytes(lt.in_h * lt.in_w * lt.in_ch, a) + _nbytes(lt.out_hw[0] * lt.out_hw[1] * lt.out_ch, o)
    wts = _weight_bytes(lt, w, lt.out_ch, c)
    if act + wts <= budget:
        return int(round(t_l2))
    if wts >= act:
        if act >= budget:
            raise TilingError(f"{lt.key}: neither weights ({wts} B) nor activations ({act} B) fit L2 ({budget} B)")
        j = ceil(2 * wts / (budget - act))
        move = ceil(wts / j) / c.bw_l3
        first, last = move, 0.0
    else:
        if wts >= budget:
            raise TilingError(f"{lt.key}: neither weights ({wts} B) nor activations ({act} B) fit L2 ({budget} B)")
        j = ceil(2 * act / (budget - wts))
        move = act / j / c.bw_l3
        # The first input tile is read and the last output tile written without overlap.
        first = _nbytes(lt.in_h * lt.in_w * lt.in_ch, a) * inputs / j / c.bw_l3
        last = _nbytes(lt.out_hw[0] * lt.out_hw[1] * lt.out_ch, o) / j / c.bw_l3
    j = min(j, lt.out_ch if wts >= act else lt.out_hw[0])
    per_tile = (t_l2 - c.t_fixed) / j + c.t_fixed
    return int(round(first + (j - 1) * max(per_tile, move) + per_tile + last))
