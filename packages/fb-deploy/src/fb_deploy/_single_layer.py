"""One-layer integer networks for any LayerType and precision: what fb-profile's GVSOC backend measures.

Random integer weights at ``b_wt``; the requantization spreads the accumulator of a random ``b_in`` input over
the ``b_out`` grid (about +-3 standard deviations), so the kernels run on realistic, non-saturated data. Input
channels that do not pack into bytes at ``b_in`` are zero-padded, as QuantLab's ``FixChannelNumbersPass`` does
(an RGB stem at 4 bits runs with 4 input channels). Linear, add and average-pool layers are preceded by an
identity 1x1 convolution (see ``single_layer_network``); ``layer.json`` names the layer to time.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from fb_deploy._errors import IntegerizationError, OverflowProofError
from fb_deploy._integer_network import IntegerNetwork, IntLayer
from fb_deploy._integerize import (
    ACC_BITS,
    DORY_BITS,
    _add_layer,
    _fits,
    _pool_layer,
    check_packing,
    choose_requant,
    max_abs,
    packing_multiple,
)
from fb_deploy._reference import conv_int
from fb_schema import LayerType

INPUT = "input"


def padded_layer_type(lt: LayerType, b_in: int) -> LayerType:
    """The layer type with input channels padded to a multiple that packs into bytes at ``b_in`` (convs only)."""
    m = packing_multiple(b_in)
    if lt.op in ("conv2d", "linear") and lt.in_ch % m:
        return dataclasses.replace(lt, in_ch=-(-lt.in_ch // m) * m)
    return lt


def single_layer_network(
    layer_type: LayerType | str, b_in: int, b_wt: int | None, b_out: int = 8, seed: int = 0
) -> IntegerNetwork:
    """A one-layer IntegerNetwork (input -> layer) with random weights; an add sums two identity copies of the input.

    Args:
        layer_type: a LayerType or its key.
        b_in: input bits (unsigned input grid).
        b_wt: weight bits (None for add / avgpool).
        b_out: output bits (requantized, unsigned).
        seed: random seed.

    Raises:
        IntegerizationError: unsupported widths or unpackable channels, naming the layer type.
    """
    lt = LayerType.from_key(layer_type) if isinstance(layer_type, str) else layer_type
    name = lt.key
    for what, bits in (("b_in", b_in), ("b_out", b_out), ("b_wt", b_wt)):
        if (bits is not None or (what == "b_wt" and lt.configurable)) and bits not in DORY_BITS:
            raise IntegerizationError(f"layer {name!r}: {what}={bits}; DORY kernels exist for {list(DORY_BITS)}")
    lt = padded_layer_type(lt, b_in)
    # DORY's first node must carry weights (its QuantLab frontend fails on a weightless first node) and an FC
    # needs a Flatten before it: linear, add and avgpool read the image through an identity 1x1 pointwise
    # convolution (identity weights, mul 1, add 0, shift 0), so that the kernel under test is measured on its own.
    # A pointwise convolution, not a 1x1 depthwise one: on GVSOC, DORY's depthwise kernel with a 1x1 window
    # returns 255 for every output of this identity (checksum 16320 for the 64 inputs summing to 8320).
    # An add reads that tensor and a second identity copy of it ("pre2"): DORY's network.c runs an add on the
    # output of the layer just before it plus a branch tensor saved earlier, and hangs on one tensor read twice.
    src = "pre" if lt.op in ("linear", "add", "avgpool") else INPUT
    inputs = (src, "pre2") if lt.op == "add" else (src,)
    in_hwc = (1, 1, lt.in_ch) if lt.op == "linear" else (lt.in_h, lt.in_w, lt.in_ch)
    common = dict(
        name="layer",
        op=lt.op,
        inputs=inputs,
        output="layer",
        layer_type=lt,
        in_bits=(b_in,) * len(inputs),
        in_signed=(False,) * len(inputs),
        out_bits=b_out,
        out_signed=False,
    )
    layer, width = _layer_under_test(name, lt, common, (b_in, b_wt, b_out), in_hwc, np.random.default_rng(seed))
    try:
        check_packing(layer)
    except IntegerizationError as exc:
        raise IntegerizationError(str(exc).replace("'layer'", repr(name))) from None
    layers = [layer]
    if src == "pre":
        pre = _identity_pre(lt, b_in)
        layers.insert(0, pre)
        if lt.op == "add":
            layers.insert(1, dataclasses.replace(pre, name="pre2", inputs=("pre",), output="pre2"))
    return IntegerNetwork(
        network=f"layer_{lt.op}",
        input_tensor=INPUT,
        input_shape_nhwc=(1, *in_hwc),
        input_bits=b_in,
        input_signed=False,
        input_scale=1.0,
        layers=layers,
        requant_bits=width,
        logit_scale=np.ones(lt.out_ch),
    )


def _layer_under_test(name: str, lt: LayerType, common: dict, bits: tuple, in_hwc: tuple,
                      rng: np.random.Generator) -> tuple[IntLayer, int]:  # fmt: skip
    """The timed layer and the requantization width it needs (32, or 64 where 32 bits are not provably safe).

    ``bits`` is ``(b_in, b_wt, b_out)``; ``name`` (the layer type's key before channel padding) names it in errors.
    """
    b_in, b_wt, b_out = bits
    levels_in, levels_out = 2**b_in - 1, 2**b_out - 1
    if lt.op == "add":
        spec = {"bits": b_in, "signed": False, "scale": 1.0}
        out = {"bits": b_out, "signed": False, "scale": 2 * levels_in / levels_out}
        return _add_layer([spec, spec], out, common), 32
    if lt.op == "avgpool":
        sin = {"bits": b_in, "signed": False, "scale": 1.0}
        return _pool_layer(lt, sin, {"bits": b_out, "signed": False, "scale": levels_in / levels_out}, common), 32
    qmax = 2 ** (b_wt - 1)
    weight = rng.integers(-qmax, qmax, lt.weight_shape_hwio)
    layer = IntLayer(**common, w_bits=b_wt, weight=weight)
    x = rng.integers(0, levels_in + 1, (4, *in_hwc))
    acc = x.reshape(len(x), -1) @ weight if lt.op == "linear" else conv_int(x, weight, lt)
    acc = acc.reshape(-1, lt.out_ch).astype(np.float64)
    # spread the accumulator of a random input over the output grid: about +-3 standard deviations
    mean, std = acc.mean(0), acc.std(0) + 1.0
    m_real = levels_out / (6 * std)
    a_real = levels_out / 2 - mean * m_real + 0.5
    fan_in = lt.kernel[0] * lt.kernel[1] * (lt.in_ch // lt.groups)
    acc_bound = fan_in * max_abs(b_in, False) * qmax
    _fits(name, "accumulator |sum(x*w)|", acc_bound, ACC_BITS)
    width = 32
    try:
        mul, add, d, worst = choose_requant(name, m_real, a_real, acc_bound, (b_out, False), 32, 24)
    except OverflowProofError:
        width = 64
        mul, add, d, worst = choose_requant(name, m_real, a_real, acc_bound, (b_out, False), 64, 24)
    layer.mul, layer.add, layer.shift = mul, add, d
    layer.bounds = {"acc": acc_bound, "requant": worst}
    return layer, width


def _identity_pre(lt: LayerType, b_in: int) -> IntLayer:
    """The identity 1x1 pointwise convolution that feeds a linear, add or avgpool layer under test."""
    h, w = (1, 1) if lt.op == "linear" else (lt.in_h, lt.in_w)
    return IntLayer(
        name="pre",
        op="conv2d",
        inputs=(INPUT,),
        output="pre",
        layer_type=LayerType.conv2d(h, w, lt.in_ch, lt.in_ch, kernel=1),
        in_bits=(b_in,),
        in_signed=(False,),
        out_bits=b_in,
        out_signed=False,
        w_bits=8,
        weight=np.eye(lt.in_ch, dtype=np.int64).reshape(1, 1, lt.in_ch, lt.in_ch),
        mul=np.ones(lt.in_ch, np.int64),
        add=np.zeros(lt.in_ch, np.int64),
        shift=0,
        bounds={"acc": 2**b_in - 1, "requant": 2**b_in - 1},
    )
