"""The pulp-model backend: DORY tiling, timeline, L3, constants, errors."""

from __future__ import annotations

import dataclasses

import pytest

from fb_profile import (
    FREE,
    ISAS,
    builtin_constants,
    kernel_cycles,
    layer_cycles,
    load_constants,
    make_backend,
    save_constants,
    tile_layer,
)
from fb_schema import LayerType


def test_tiler_reproduces_dorys_thin_pointwise_tiles():
    # MobileNetV1-1.0@224 block 7 pointwise at 8 bit: DORY picks 8 channels x 8 rows x 2 columns (~900 tiles).
    lt = LayerType.conv2d(14, 14, 512, 512, kernel=1)
    t = tile_layer(lt, 8, 8, 8, 35_000)
    assert (t.n_out, t.h_out, t.w_out) == (8, 8, 2)
    assert t.mem <= 35_000
    n, h, w = t.counts(lt.out_ch, *lt.out_hw)
    assert n * h * w == 64 * 2 * 7


def test_tiler_single_tile_when_everything_fits_and_byte_aligned_subbyte_channels():
    small = LayerType.conv2d(8, 8, 16, 16, kernel=3)
    t = tile_layer(small, 8, 8, 8, 35_000)
    assert (t.n_out, t.h_out, t.w_out) == (16, 8, 8)
    big = LayerType.conv2d(28, 28, 96, 192, kernel=1)
    for bits in (4, 2):
        t = tile_layer(big, bits, bits, bits, 35_000)
        assert t.n_out % (8 // bits) == 0 and t.mem <= 35_000


def test_timeline_adds_dma_and_overheads_to_the_kernel():
    c = builtin_constants("xpulpv2")
    lt = LayerType.conv2d(14, 14, 384, 384, kernel=1)
    full = layer_cycles(lt, 8, 8, c)
    kernel = kernel_cycles(lt, 8, 8, c)
    assert full > kernel  # tiling: thinner tiles, per-tile overhead, first-tile DMA
    slower = dataclasses.replace(c, t_tile_ovh=c.t_tile_ovh + 100)
    n, h, w = tile_layer(lt, 8, 8, 8, c.l1_budget).counts(384, 14, 14)
    assert layer_cycles(lt, 8, 8, slower) - full == pytest.approx(100 * n * h * w, abs=2)


def test_l3_weight_streaming_is_bandwidth_bound_for_the_classifier():
    c = builtin_constants("xpulpv2")
    fc = LayerType.linear(768, 1000)  # 768 kB of 8-bit weights: streamed from L3
    cycles = layer_cycles(fc, 8, 8, c)
    assert cycles >= 768_000 / c.bw_l3
    faster_l3 = dataclasses.replace(c, bw_l3=2 * c.bw_l3)
    assert layer_cycles(fc, 8, 8, faster_l3) < 0.6 * cycles
    # At 2-bit weights they fit L2 (copied outside the timed window): no L3 term at all.
    assert layer_cycles(fc, 8, 2, c) < 0.3 * cycles


def test_depthwise_stride2_is_input_dma_bound_and_gains_from_low_activation_bits():
    c = builtin_constants("xpulpnn1")
    dw = LayerType.depthwise(56, 56, 96, stride=2)
    t8, t4 = layer_cycles(dw, 8, 8, c), layer_cycles(dw, 4, 8, c)
    assert t8 >= 56 * 56 * 96 * c.dma_1b
    assert t4 < 0.65 * t8


def test_constants_have_a_source_for_every_table():
    for isa in ISAS:
        c = builtin_constants(isa)
        assert len(c.inner) == 9 and len(c.linear) == 9
        for name in (*FREE, "inner", "im2col", "linear", "l1_budget", "l2_bytes"):
            assert c.sources.get(name, "").startswith("["), (isa, name)


def test_unknown_isa_and_pair_outside_the_set_are_one_line_errors():
    with pytest.raises(ValueError, match=r"unknown ISA 'xpulpv9' in target 'pulp-model:xpulpv9'; the pulp-model knows"):
        make_backend("pulp-model:xpulpv9")
    with pytest.raises(ValueError, match="unknown target 'riscv'"):
        make_backend("riscv")
    backend = make_backend("pulp-model:xpulpv2")
    with pytest.raises(ValueError, match=r"b_wt=3 outside the supported bits \(2, 4, 8\)"):
        backend.latency(LayerType.linear(64, 10), 8, 3)
    with pytest.raises(ValueError, match="bit width.s. 6 not supported"):
        backend.check((2, 6, 8), 8)


def test_constants_file_round_trip_and_errors(tmp_path):
    c = builtin_constants("xpulpnn1").with_free(eta=0.7, bw_l3=1.0)
    path = tmp_path / "c.json"
    save_constants(c, path)
    loaded = load_constants(path)
    assert loaded.eta == 0.7 and loaded.bw_l3 == 1.0 and loaded.inner == c.inner
    backend = make_backend("pulp-model:xpulpnn1", constants=path)
    assert backend.target(8, (2, 4, 8)).name == "pulp-xpulpnn1-calibrated"
    with pytest.raises(ValueError, match="constants are for xpulpnn1, the target is xpulpv2"):
        make_backend("pulp-model:xpulpv2", constants=path)
    path.write_text('{"schema": "freebits/pulp-model-constants/v1", "isa": "xpulpv2", "constants": {"eta": -1}}')
    with pytest.raises(ValueError, match=r"constants.eta: expected a positive number, got -1"):
        load_constants(path)
