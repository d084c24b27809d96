"""The constants of the analytical PULP cluster model: one table per ISA, every entry with its source.

Source tags (see the project's PULP model note): [M] published measurement, [C] read from DORY / PULP-NN code or
target description, [P] instruction count of the PULP-NN(-mixed) inner loops from a compiler proxy, [F] fitted to
[M] data, [E] estimate. Paper: Rutishauser, Conti, Benini, "Free Bits", arXiv 2307.02894, Sec. IV (8-core PULP
cluster, 64 KiB L1, 512 KiB L2, DORY + PULP-NN kernels).

The *free* constants (``FREE``) are the ones ``fb-profile calibrate`` fits to measurements; a calibrated set is
written as JSON and loaded with ``--constants``.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from fb_schema import read_json, write_atomic

ISAS = ("xpulpv2", "xpulpnn1", "xpulpnn2")
# Constants a calibration may fit (and that a constants file may set); DEFAULT_FIT is what `calibrate` fits unless
# told otherwise. The add and pool kernel costs joined when measured tables held add / pool layers.
FREE = ("eta", "b_blk", "t_tile_ovh", "t_fixed", "dw_out", "dma_1b", "bw_l3", "add_elem", "pool_elem")
DEFAULT_FIT = ("eta", "b_blk", "t_tile_ovh", "t_fixed", "dw_out", "dma_1b", "bw_l3")
CONSTANTS_SCHEMA = "freebits/pulp-model-constants/v1"

Pair = tuple[int, int]


@dataclass(frozen=True)
class Constants:
    """Every number the model uses for one ISA (cycles, bytes, bytes/cycle)."""

    isa: str
    toolchain: str = "pulp-gcc"  # the compiler profile the costs are for (``_toolchain.PROFILES``)
    # -- cluster and memory system (DORY's PULP_gvsoc target description) --
    n_cores: int = 8
    l1_budget: int = 35_000
    l2_bytes: int = 512_000
    l2_code_reserve: int = 120_000
    bw_l2l1: float = 8.0
    l_dma: float = 10.0
    t_cmd: float = 25.0
    dma_1b: float = 3.9
    bw_l3: float = 0.65
    bn_bits: int = 32
    # -- per-core kernel costs --
    eta: float = 0.92
    b_blk: float = 155.0
    b_blk_out: dict[int, float] = field(default_factory=lambda: {8: 0.0, 4: 4.0, 2: 6.0})
    mixed_prologue: float = 0.0
    im2col_call: float = 40.0
    kernel_prologue: float = 100.0
    odd_per_channel: float = 20.0
    eta_scalar: float = 0.92
    t_tile_ovh: float = 350.0
    t_fixed: float = 1500.0
    dw_out: float = 55.0
    dw_unpack: dict[int, float] = field(default_factory=lambda: {8: 0.0, 4: 7.0, 2: 9.0})
    dw_wt_unpack: float = 1.5
    add_elem: float = 15.0
    pool_elem: float = 3.0
    pool_out: float = 20.0
    # -- ISA tables: inner loop (cycles, MACs) per 4x2 block iteration, im2col cost per element, linear cycles/MAC --
    inner: dict[Pair, tuple[int, int]] = field(default_factory=dict)
    im2col: dict[Pair, float] = field(default_factory=dict)
    linear: dict[Pair, float] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict, compare=False)

    def mm_bits(self, a: int, w: int) -> int:
        """Activation width the matmul runs at after im2col (V2: 8; NNv1: max(a, w); NNv2: a)."""
        if self.isa == "xpulpv2":
            return 8
        if self.isa == "xpulpnn1":
            return max(a, w)
        return a

    def lanes(self, a: int, w: int) -> int:
        """SIMD lanes of the odd-pixel path after any software unpacking."""
        return 4 if self.isa == "xpulpv2" else 32 // max(a, w)

    def odd_cycles_per_mac(self, a: int, w: int) -> float:
        """Cycles per MAC of the 1-pixel leftover path (plain SIMD dot products, no 4x2 blocking).

        Software weight unpacking is no longer shared by two pixels there, so its per-MAC cost (the inner-loop
        cost above the native equal-width loop) counts twice.
        """
        lanes = self.lanes(a, w)
        c_it, m_it = self.inner[(a, w)]
        wide = 8 if self.isa == "xpulpv2" else max(a, w)
        c_nat, m_nat = self.inner[(wide, wide)]
        return 3 / lanes / self.eta_scalar + 2 * max(0.0, c_it / m_it - c_nat / m_nat) / self.eta

    def free_values(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in FREE}

    def with_free(self, **values: float) -> Constants:
        unknown = set(values) - set(FREE)
        if unknown:
            raise ValueError(f"not a free model constant: {', '.join(sorted(unknown))}; free: {', '.join(FREE)}")
        return dataclasses.replace(self, **values)


_COMMON_SOURCES = {
    "n_cores": "[C] DORY tiler_conv2d.py CORES = 8",
    "l1_budget": "[C] DORY PULP_gvsoc HW_description.json: 64000 B L1 - stacks (3800 + 7*3600)",
    "l2_bytes": "[C] DORY PULP_gvsoc HW_description.json memory.L2.dimension",
    "l2_code_reserve": "[C] dory_examples config_Quantlab_MV1_8bits.json 'code reserved space'",
    "bw_l2l1": "[C] HW_description.json L2.bandwidth (64-bit cluster AXI)",
    "l_dma": "[C] HW_description.json L2.latency",
    "t_cmd": "[E] mchan_transfer_push_{1d,2d}: 3-5 register writes through the peripheral interconnect",
    "dma_1b": "[F] DORY GAP8 stride-2 depthwise layers (HWC->CHW, 1-byte lines): 3.5-4.4 cycles/byte",
    "bw_l3": "[M] DORY paper figure: 1 024 000 B FC weights in 15.78 ms at 100 MHz on GAP8",
    "eta": "[F] PULP-NN 8-bit peak 15.5 MAC/cycle (Garofalo et al. 2020), pulp-nn-mixed 16 (Bruschi et al. 2020)",
    "b_blk": "[F] DORY GAP8 small-K pointwise layers; static count of the BN/QNT path 140-160 [P]",
    "b_blk_out": "[P] p.insert packing of sub-byte outputs",
    "im2col_call": "[F]/[P] im2col loops over kh*kw rows, padding branches",
    "kernel_prologue": "[P]/[E] kernel prologue, epilogue and team barrier",
    "odd_per_channel": "[P] 1-pixel leftover path, per output channel",
    "eta_scalar": "[F] as eta of XpulpV2: the leftover path issues plain loads and SIMD dot products",
    "t_tile_ovh": "[F] index arithmetic, 3 team barriers, DMA waits per tile",
    "t_fixed": "[E] pi_cl_team_fork + pmsis_l1_malloc per layer",
    "dw_out": "[F] DORY GAP8 stride-1 depthwise layers 1.13-1.35 MAC/cycle",
    "dw_unpack": "[P] p.extractu unpacking of sub-byte inputs in the depthwise column buffer",
    "dw_wt_unpack": "[E] one extract per sub-byte depthwise weight",
    "add_elem": "[P] pulp_nn_add: about 59 instructions per 4 outputs",
    "pool_elem": "[C] pulp_nn_avgpool window loop with post-increment load and hardware loop: 3 instructions per "
    "input element (kit-gcc12: 5, 8.3 cycles measured on GVSOC)",
    "pool_out": "[E] requantisation per pooled output",
}

_BITS = (2, 4, 8)

# Linear loops (cycles per MAC, one core). [P] where counted, [E] where extrapolated from the counted ones:
# V2 adds a per-MAC software unpack cost for sub-byte weights and inputs; NNv1 runs native SIMD when a == w,
# unpacks the narrower input in software when a < w and the weights when a > w; NNv2 expands in hardware.
_V2_LINEAR_W = {8: 0.0, 4: 33 / 16 - 5 / 8, 2: 63 / 32 - 5 / 8}
_V2_LINEAR_A = {8: 0.0, 4: 43 / 16 - 33 / 16, 2: 0.6}
_NN1_LINEAR = {
    (8, 8): 3 / 4,
    (4, 4): 3 / 8,
    (2, 2): 3 / 16,
    (8, 4): 20 / 8,
    (8, 2): 2.4,
    (4, 2): 2.8,
    (4, 8): 3 / 4 + 0.3,
    (2, 8): 3 / 4 + 0.3,
    (2, 4): 3 / 8 + 0.35,
}


def _xpulpv2() -> Constants:
    inner = {(a, w): {8: (14, 32), 4: (75, 64), 2: (151, 128)}[w] for a in _BITS for w in _BITS}
    im2col = {(a, 8): {8: 0.5, 4: 1.9, 2: 1.8}[a] for a in _BITS}
    linear = {(a, w): 5 / 8 + _V2_LINEAR_W[w] + _V2_LINEAR_A[a] for a in _BITS for w in _BITS}
    sources = {
        **_COMMON_SOURCES,
        "inner": "[P] pulp-nn-mixed XpulpV2 matmul 4x2: 8-bit 14/32; sub-byte weights unpacked in the loop "
        "75/64, 151/128",
        "im2col": "[P] pulp_nn_im2col_u{8,4,2}_to_u8 loop bodies",
        "linear": "[P] a8w8 5/8, a8w4 33/16, a8w2 63/32, a4w4 43/16; [E] the others",
    }
    return Constants("xpulpv2", eta=0.92, inner=inner, im2col=im2col, linear=linear, sources=sources)


def _xpulpnn1() -> Constants:
    inner = {
        (8, 8): (9, 32),
        (8, 4): (86, 64),
        (8, 2): (160, 128),
        (4, 8): (9, 32),
        (4, 4): (9, 64),
        (4, 2): (216, 128),
        (2, 8): (9, 32),
        (2, 4): (9, 64),
        (2, 2): (9, 128),
    }
    im2col = {(8, 8): 0.5, (4, 4): 0.25, (2, 2): 0.125, (4, 8): 1.9, (2, 8): 1.8, (2, 4): 3.0}
    sources = {
        **_COMMON_SOURCES,
        "eta": "[F] XpulpNN conv 4-bit / 2-bit 6x / 8x faster than XpulpV2 (Garofalo et al. 2021): MAC&LOAD issues a "
        "TCDM access every cycle, more bank conflicts than XpulpV2",
        "inner": "[P] pulp-nn-mixed XpulpNN MAC&LOAD 4x2: 9 instr per 8 dots; a > w: weights unpacked in the loop",
        "im2col": "[P] xpulp_nn_im2col same width 0.5*a/8, u4->u8 1.9, u2->u8 1.8, u2->u4 3",
        "mixed_prologue": "[P] first weight unpack per block when a > w (outside count 202 vs 156)",
        "linear": "[P] a8w8 3/4, a4w4 3/8, a8w4 20/8; [E] the others",
    }
    return Constants(
        "xpulpnn1", eta=0.80, mixed_prologue=40.0, inner=inner, im2col=im2col, linear=dict(_NN1_LINEAR), sources=sources
    )


def _xpulpnn2() -> Constants:
    inner = {
        (8, 8): (9, 32),
        (8, 4): (17, 64),
        (8, 2): (33, 128),
        (4, 8): (9, 32),
        (4, 4): (9, 64),
        (4, 2): (17, 128),
        (2, 8): (9, 32),
        (2, 4): (9, 64),
        (2, 2): (9, 128),
    }
    im2col = {(a, a): 0.5 * a / 8 for a in _BITS}
    # Hardware expansion: max(a, w)-bit lanes, plus ~6 % for the mixed-format bookkeeping.
    linear = {(a, w): 0.75 * max(a, w) / 8 * (1.0 if a == w else 1.06) for a in _BITS for w in _BITS}
    sources = {
        **_COMMON_SOURCES,
        "eta": "[F] as xpulpnn1 (same MAC&LOAD datapath)",
        "inner": "[P] pulp-nn-mixed XpulpNN-mixed: ~1.06 instr per dot of 32/max(a,w) lanes, HW operand expansion",
        "im2col": "[P] same-width copy 0.5*a/8 (the matmul runs at the activation width)",
        "linear": "[E] xpulpnn1 equal-width loops at max(a, w) lanes, +6 % when mixed",
    }
    return Constants("xpulpnn2", eta=0.80, inner=inner, im2col=im2col, linear=linear, sources=sources)


_BUILTIN = {"xpulpv2": _xpulpv2, "xpulpnn1": _xpulpnn1, "xpulpnn2": _xpulpnn2}
TOOLCHAINS = ("pulp-gcc", "kit-gcc12")

# GCC 12 behind the GVSOC kit's shim emits no hardware loops and no post-increment loads (only the builtins become
# Xpulp instructions). Inner loops, counted in the disassembly of the kit's builds (riscv64-unknown-elf-objdump -d):
# pulp-nn-mixed XpulpV2 8-bit matmul 21 instructions per 32 MACs (6 lw, 6 addi, 8 pv.sdotusp.b, 1 bne) where PULP
# GCC needs 14; XpulpNN MAC&LOAD loop 11 vs 9 (MAC&LOAD post-increments itself). Outside the inner loops (im2col,
# requantization, depthwise and pooling loops, tile bookkeeping) every load and store pays its own pointer
# increment and every loop its counter and branch: the same 1.5x as the XpulpV2 loop, which is made of the same
# lw/addi/bne pattern.
_KIT_INNER = {"xpulpv2": 21 / 14, "xpulpnn1": 11 / 9, "xpulpnn2": 11 / 9}
# Weights unpacked in software (XpulpV2 with sub-byte weights; XpulpNN when activations are wider than weights):
# the kit's loop is 73 instructions per 32 MACs in both (xpulp_nn_conv_u8_u8_i2 and pulp_nn's u2 path alike: 8 dot
# products, 20 bit extracts/inserts, 16 sll + 16 sra sign extensions, 5 lw), where PULP GCC's p.extract
# sign-extends in one instruction.
_KIT_UNPACK_PER_MAC = 73 / 32
_KIT_OUTER = 1.5
# One DORY layer's fixed cost on the kit: a GVSOC run of fb-deploy's one-layer 64 -> 10 linear network (640 MACs,
# 80 per core) measures 3131 cycles on pulp-open, 8 cores, all checksums passing: ~3000 cycles of team fork, DMA
# set-up and waits, barriers and tile loop before any MAC; the shipped 1500 is PULP GCC's.
_KIT_FIXED = 3000.0
# The add and pool kernels of the kit's builds: pulp_nn_add_u8_u8_u8's loop is 44 instructions per 4 outputs (8 lbu,
# 11 add, 4 sll, 4 sra, 12 Xpulp, 4 sb, 1 bne), ~13 cycles per output with its load-use stalls; pulp_nn_avgpool's
# window loop is 5 instructions per input element (lbu, 2 add, p.clip, bne) and a GVSOC run of the 8x8x64 global pool
# takes 34 058 cycles on its one busy core, 8.3 per element.
_KIT_ADD_ELEM = 13.0
_KIT_POOL_ELEM = 8.0
_OUTER_FIELDS = ("b_blk", "im2col_call", "kernel_prologue", "odd_per_channel", "t_tile_ovh", "dw_out", "add_elem",
                 "pool_elem", "pool_out")  # fmt: skip


def _unpacks_weights(isa: str, a: int, w: int) -> bool:
    """Whether the matmul unpacks the weights in software (V2: any sub-byte weight; NN: weights narrower)."""
    return w < 8 if isa == "xpulpv2" else a > w


def with_toolchain(c: Constants, toolchain: str) -> Constants:
    """``c`` (PULP GCC costs) rescaled for another compiler profile; see ``_KIT_INNER``/``_KIT_OUTER``."""
    if toolchain not in TOOLCHAINS:
        raise ValueError(f"unknown toolchain profile {toolchain!r}; expected one of {', '.join(TOOLCHAINS)}")
    if toolchain == c.toolchain or toolchain == "pulp-gcc":
        return c
    fi, fo = _KIT_INNER[c.isa], _KIT_OUTER
    scaled = {name: getattr(c, name) * fo for name in _OUTER_FIELDS}
    sources = {**c.sources, "toolchain": f"[C] kit-gcc12: inner loops x{fi:.3f}, software-unpacked weights "
               f"{_KIT_UNPACK_PER_MAC:.2f} instructions/MAC, outer code x{fo} (disassembly of the kit's builds), "
               "t_fixed 3000, pool 8.3 cycles/element [M] (GVSOC one-layer runs)"}  # fmt: skip
    return dataclasses.replace(
        c,
        toolchain=toolchain,
        inner={
            (a, w): (macs * _KIT_UNPACK_PER_MAC if _unpacks_weights(c.isa, a, w) else cyc * fi, macs)
            for (a, w), (cyc, macs) in c.inner.items()
        },
        im2col={k: v * fo for k, v in c.im2col.items()},
        linear={k: v * fi for k, v in c.linear.items()},
        dw_unpack={k: v * fo for k, v in c.dw_unpack.items()},
        dw_wt_unpack=c.dw_wt_unpack * fo,
        b_blk_out={k: v * fo for k, v in c.b_blk_out.items()},
        sources=sources,
        **{**scaled, "t_fixed": _KIT_FIXED, "add_elem": _KIT_ADD_ELEM, "pool_elem": _KIT_POOL_ELEM},
    )


def builtin_constants(isa: str, toolchain: str = "pulp-gcc") -> Constants:
    """The shipped constants of ``isa`` for a compiler profile (``pulp-gcc``, the default, or ``kit-gcc12``).

    Raises:
        ValueError: an unknown ISA or profile (one line listing the known ones).
    """
    if isa not in _BUILTIN:
        raise ValueError(f"unknown ISA {isa!r}; the pulp-model knows {', '.join(ISAS)}")
    return with_toolchain(_BUILTIN[isa](), toolchain)


def save_constants(c: Constants, path: str | os.PathLike, extra: dict[str, Any] | None = None) -> None:
    """Write the free constants of ``c`` (what ``--constants`` loads) atomically as JSON."""
    obj = {"schema": CONSTANTS_SCHEMA, "isa": c.isa, "toolchain": c.toolchain, "constants": c.free_values(),
           **(extra or {})}  # fmt: skip
    write_atomic(path, json.dumps(obj, indent=2) + "\n")


def load_constants(path: str | os.PathLike, isa: str | None = None) -> Constants:
    """Read a constants file: the built-in table of its ISA with the file's free constants applied."""
    obj = read_json(path)
    if not isinstance(obj, dict) or obj.get("schema") != CONSTANTS_SCHEMA:
        raise ValueError(f"{path}: schema: expected {CONSTANTS_SCHEMA!r}")
    file_isa = obj.get("isa")
    if file_isa not in ISAS:
        raise ValueError(f"{path}: isa: expected one of {', '.join(ISAS)}, got {file_isa!r}")
    if isa is not None and file_isa != isa:
        raise ValueError(f"{path}: isa: constants are for {file_isa}, the target is {isa}")
    toolchain = obj.get("toolchain", "pulp-gcc")
    if toolchain not in TOOLCHAINS:
        raise ValueError(f"{path}: toolchain: expected one of {', '.join(TOOLCHAINS)}, got {toolchain!r}")
    values = obj.get("constants")
    if not isinstance(values, dict):
        raise ValueError(f"{path}: constants: expected an object of {', '.join(FREE)}")
    for name, value in values.items():
        if name not in FREE:
            raise ValueError(f"{path}: constants.{name}: expected one of {', '.join(FREE)}")
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"{path}: constants.{name}: expected a positive number, got {value!r}")
    return builtin_constants(file_isa, toolchain).with_free(**{k: float(v) for k, v in values.items()})
