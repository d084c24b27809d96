"""Integerization of a QuantizedNetwork: fold BN and every real scale into integer requantization.

For a conv/linear with input step ``s_in``, per-channel weight step ``s_w``, BN ``(gamma, beta, mean, var)``
and output step ``s_out`` (QuantLab's ``IntegerizePACTNetPass`` and quantlib's ``RequantShift``):

    g = gamma / sqrt(var + eps),   b~ = beta - mean * g (+ g * bias)
    mul = round(2^d * g * s_in * s_w / s_out),   add = round(2^d * (b~ / s_out + 1/2))
    y   = clip(floor((acc * mul + add) / 2^d), grid(out))

The shift ``d`` is chosen per layer: the largest ``d <= max_shift`` for which the worst case
``|acc| * |mul| + |add|`` provably fits the requantization width (DORY's ``BNRelu_bits``), where
``|acc| <= fan_in * max|x| * max|w| + |bias|`` follows from the bit widths alone (all bound arithmetic in
Python ints, which never wrap; non-finite BN statistics, weights or steps and ``var + eps <= 0`` are
refused). A rounded multiplier ``mul`` errs by up to ``2^b / (2 * mul)`` output steps at full scale; ``"auto"``
keeps 32 bits only when every live channel's ``mul >= 2^(b + 6)`` (under 1/128 of a step), otherwise it takes
64 bits and ``d`` up to 30.
"""

from __future__ import annotations

import numpy as np

from fb_deploy._errors import IntegerizationError, OverflowProofError
from fb_deploy._integer_network import IntegerNetwork, IntLayer, grid
from fb_schema import LayerType, QuantizedNetwork, max_abs, residual_add_step

DORY_BITS = (2, 4, 8)
ACC_BITS = 32  # PULP-NN accumulates in int32
FLOAT32_EXACT = 2**24  # constants stored as float32 in the ONNX must stay below this


def integerize(qn: QuantizedNetwork, requant_bits: int | str = "auto", max_shift: int | None = None) -> IntegerNetwork:
    """Turn a QuantizedNetwork into an IntegerNetwork (integer weights, per-channel integer requantization).

    Args:
        qn: the trained artifact (fb-search's export).
        requant_bits: 32 or 64, the width of ``acc * mul + add`` (DORY's ``BNRelu_bits``); ``"auto"`` takes 32
            when every layer provably fits with multipliers precise to 1/128 of an output step, else 64.
        max_shift: largest requantization shift ``d`` (``D = 2^d``); default 24 at 32 bits, 30 at 64 bits.

    Raises:
        IntegerizationError: an unsupported op or bit width, an unpackable channel count, or (for an explicit
            width) an overflow that the bit widths cannot rule out; the message names the layer.
    """

    def shift(width: int) -> int:  # 0 is a valid shift: test for None, not for truth
        return (24 if width == 32 else 30) if max_shift is None else max_shift

    if requant_bits == "auto":
        try:
            return _integerize(qn, 32, shift(32), precise=True)
        except OverflowProofError:
            return _integerize(qn, 64, shift(64))
    if requant_bits not in (32, 64):
        raise IntegerizationError(f"requant_bits: 32, 64 or 'auto' expected, got {requant_bits!r}")
    width = int(requant_bits)
    return _integerize(qn, width, shift(width))


def _integerize(qn: QuantizedNetwork, width: int, max_shift: int, precise: bool = False) -> IntegerNetwork:
    with np.load(qn.npz_path) as npz:
        arrays = {k: npz[k].astype(np.float64) for k in npz.files}
    inp = qn.input
    specs = {inp["tensor"]: inp, **qn.tensors}
    layers = []
    last = len(qn.nodes) - 1
    logit_scale = None
    for index, node in enumerate(qn.nodes):
        lt = LayerType.from_key(node["layer_type"])
        ins = [specs[t] for t in node["inputs"]]
        out = specs[node["output"]]
        name = node["name"]
        _check_widths(name, ins, out, final=index == last and node["op"] == "linear")
        common = dict(
            name=name,
            op=node["op"],
            inputs=tuple(node["inputs"]),
            output=node["output"],
            layer_type=lt,
            in_bits=tuple(s["bits"] for s in ins),
            in_signed=tuple(s["signed"] for s in ins),
            out_bits=out["bits"],
            out_signed=out["signed"],
        )
        if node["op"] in ("conv2d", "depthwise_conv2d", "linear"):
            layer, scale = _linear_layer(node, lt, ins[0], out, arrays, width, max_shift, precise, common)
            if out["bits"] == 32:
                logit_scale = scale
        elif node["op"] == "avgpool":
            layer = _pool_layer(lt, ins[0], out, common)
        elif node["op"] == "add":
            layer = _add_layer(ins, out, common)
        elif node["op"] == "maxpool":
            layer = _maxpool_layer(lt, ins[0], out, common)
        else:
            raise IntegerizationError(f"layer {name!r}: op {node['op']!r} is not supported by the DORY export")
        check_packing(layer)
        layers.append(layer)
    if logit_scale is None:
        raise IntegerizationError(f"{qn.network}: the last layer must be a linear classifier with an int32 output")
    return IntegerNetwork(
        network=qn.network,
        input_tensor=inp["tensor"],
        input_shape_nhwc=tuple(inp["shape_nhwc"]),
        input_bits=inp["bits"],
        input_signed=inp["signed"],
        input_scale=float(inp["scale"]),
        layers=layers,
        requant_bits=width,
        logit_scale=logit_scale,
        ref_inputs=arrays[qn.doc["reference"]["inputs"]],
        ref_logits=arrays[qn.doc["reference"]["logits"]],
        config_sha256=qn.doc.get("config_sha256"),
    )


def _check_widths(name: str, ins: list[dict], out: dict, final: bool) -> None:
    """Every input and the output at a DORY kernel width; int32 only out of the ``final`` linear classifier."""
    if out["bits"] == 32 and not final:
        raise IntegerizationError(f"layer {name!r}: only the final linear layer may output int32")
    for i, s in enumerate([*ins, out]):
        if s["bits"] not in DORY_BITS and not (s is out and out["bits"] == 32):
            raise IntegerizationError(
                f"layer {name!r}: {'output' if s is out else f'input {i}'} has {s['bits']} bits; "
                f"DORY kernels exist for {list(DORY_BITS)} only"
            )


def _linear_layer(node, lt, sin, sout, arrays, width, max_shift, precise, common) -> tuple[IntLayer, np.ndarray]:
    name, wq = node["name"], node["w_quant"]
    b_wt = wq["bits"]
    if b_wt not in DORY_BITS:
        raise IntegerizationError(f"layer {name!r}: {b_wt}-bit weights; DORY kernels exist for {list(DORY_BITS)}")
    s_w = _checked(name, "weight scale", arrays[wq["scale"]], positive=True)
    _checked(name, "weight", arrays[node["weight"]])
    _checked(name, "input step", np.asarray(float(sin["scale"])), positive=True)
    w_int = np.clip(np.round(arrays[node["weight"]] / s_w), -(2 ** (b_wt - 1)), 2 ** (b_wt - 1) - 1).astype(np.int64)
    acc_scale = float(sin["scale"]) * s_w  # real value of one accumulator LSB, per output channel
    bias = _checked(name, "bias", arrays[node["bias"]]) if node["bias"] else np.zeros(lt.out_ch)
    fan_in = lt.kernel[0] * lt.kernel[1] * (lt.in_ch // lt.groups)
    acc_bound = fan_in * max_abs(sin["bits"], sin["signed"]) * 2 ** (b_wt - 1)
    layer = IntLayer(**common, w_bits=b_wt, weight=w_int)
    if sout["bits"] == 32:  # the classifier: int32 accumulator with bias
        if node["bn"] is not None:
            raise IntegerizationError(f"layer {name!r}: an int32-output layer cannot carry batch norm")
        layer.bias = np.round(bias / acc_scale).astype(np.int64)
        acc_bound += int(np.abs(layer.bias).max())
        _fits(name, "accumulator |sum(x*w) + bias|", acc_bound, ACC_BITS)
        if np.abs(layer.bias).max() >= FLOAT32_EXACT:
            raise IntegerizationError(f"layer {name!r}: integer bias exceeds 2^24 and is not exact in float32")
        layer.bounds = {"acc": acc_bound}
        return layer, acc_scale
    _fits(name, "accumulator |sum(x*w)|", acc_bound, ACC_BITS)
    g, beta = np.ones(lt.out_ch), np.zeros(lt.out_ch)
    if node["bn"] is not None:
        g, beta = _fold_bn(name, node["bn"], arrays)
    s_out = float(_checked(name, "output step", np.asarray(float(sout["scale"])), positive=True))
    m_real = g * acc_scale / s_out
    a_real = (beta + g * bias) / s_out + 0.5  # +1/2: round half up, folded into the add
    mul, add, d, worst = choose_requant(
        name, m_real, a_real, acc_bound, (sout["bits"], sout["signed"]), width, max_shift, precise=precise
    )
    layer.mul, layer.add, layer.shift = mul, add, d
    layer.bounds = {"acc": acc_bound, "requant": worst}
    return layer, acc_scale


def choose_requant(name, m_real, a_real, acc_bound, out_grid, width, max_shift, precise=False):
    """Largest shift d whose worst case ``acc_bound * |mul| + |add|`` fits ``width`` bits; (mul, add, d, worst).

    Raises:
        OverflowProofError: no shift fits, or the fitting multiplier is coarser than ``2^out_bits`` (with
            ``precise``: some live channel's multiplier is below ``2^(out_bits + 6)``).
    """
    lo, hi = grid(*out_grid)
    for d in range(max_shift, -1, -1):
        mul, add, worst = _requant_at(m_real, a_real, acc_bound, lo, hi, d)
        if worst < 2 ** (width - 1):
            break
    else:
        raise OverflowProofError(f"layer {name!r}: |acc*mul + add| can reach {worst}, which overflows int{width}")
    mul, add = np.array(mul, np.int64), np.array(add, np.int64)  # |mul|, |add| <= worst < 2^(width-1): exact
    # A multiplier coarser than 2^out_bits errs by more than half an output step at full scale.
    live = np.abs(m_real) * acc_bound >= 1  # channels whose output can move at all
    if precise and live.any() and np.abs(mul[live]).min() < 2 ** (out_grid[0] + 6):
        raise OverflowProofError(
            f"layer {name!r}: int{width} allows shift {d} only; multiplier {int(np.abs(mul[live]).min())} "
            f"is coarser than 2^{out_grid[0] + 6}"
        )
    if np.abs(mul).max() < 2 ** out_grid[0]:
        raise OverflowProofError(
            f"layer {name!r}: |acc*mul + add| <= {acc_bound}*|mul| + |add| fits int{width} only with shift {d}, "
            f"where the multiplier (max {int(np.abs(mul).max())}) is too coarse for {out_grid[0]}-bit outputs; "
            "use requant bits 64"
        )
    return mul, add, d, worst


def _requant_at(m_real, a_real, acc_bound: int, lo: int, hi: int, d: int) -> tuple[list[int], list[int], int]:
    """``mul``, ``add`` and the worst case ``max(acc_bound * |mul| + |add|)`` at shift ``d``, in Python ints.

    Python ints never wrap, so the proof holds at 64 bits too (an int64 ``acc_bound * mul`` can overflow and
    pass for a small number). ``m_real`` and ``a_real`` are finite (checked by the caller).
    """
    scale = 2.0**d
    mul = [int(v) for v in np.round(np.asarray(m_real, np.float64) * scale)]  # float64 integers: exact as int
    add, worst = [], 0
    for m, a in zip(mul, np.round(np.asarray(a_real, np.float64) * scale)):
        reach = acc_bound * abs(m)
        # Any add beyond these limits saturates the clip for every possible accumulator; cutting it there
        # changes no output and keeps the proof tight.
        a = min(max(int(a), lo * 2**d - reach - 1), (hi + 1) * 2**d + reach)
        add.append(a)
        worst = max(worst, reach + abs(a))
    return mul, add, worst


def _checked(name: str, what: str, values: np.ndarray, positive: bool = False) -> np.ndarray:
    """``values``, after refusing NaN/inf (and, with ``positive``, values <= 0) with a one-line error."""
    values = np.asarray(values, np.float64)
    bad = ~np.isfinite(values) | ((values <= 0) if positive else False)
    if bad.any():
        index = tuple(int(i) for i in np.argwhere(bad)[0])
        need = "finite positive" if positive else "finite"
        where = f"{what}{list(index) if index else ''}"
        raise IntegerizationError(f"layer {name!r}: {where} is {float(values[bad].flat[0])}; {need} values expected")
    return values


def _fold_bn(name: str, bn: dict, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """``(g, b~)`` of ``gamma * (x - mean) / sqrt(var + eps) + beta`` = ``g * x + b~``, from checked statistics."""
    gamma, beta, mean = (_checked(name, f"bn.{k}", arrays[bn[k]]) for k in ("gamma", "beta", "mean"))
    var = _checked(name, "bn.var + eps", arrays[bn["var"]] + float(bn["eps"]), positive=True)
    g = gamma / np.sqrt(var)
    _checked(name, "bn.gamma / sqrt(var + eps)", g)
    return g, beta - mean * g


def _pool_layer(lt, sin, sout, common) -> IntLayer:
    name = common["name"]
    if any(lt.padding):
        raise IntegerizationError(f"layer {name!r}: padded average pooling is not supported by the DORY export")
    ks = lt.kernel[0] * lt.kernel[1]
    sum_bound = ks * max_abs(sin["bits"], sin["signed"])
    m_real = float(sin["scale"]) / (ks * float(sout["scale"]))
    for d in range(24, -1, -1):
        m = round(m_real * 2**d)
        add = 2 ** (d - 1) if d else 0
        worst = sum_bound * m + add
        # PULP-NN divides mul by the window size inside the kernel: store mul = m * ks, exactly divisible.
        if worst < 2**31 and m * ks < FLOAT32_EXACT:
            break
    else:
        raise OverflowProofError(f"layer {name!r}: average-pool requantization cannot fit int32")
    if m == 0:
        raise IntegerizationError(f"layer {name!r}: average-pool requantization multiplier rounds to 0")
    layer = IntLayer(**common, mul=np.array(m * ks, np.int64), add=np.array(add, np.int64), shift=d)
    layer.bounds = {"acc": sum_bound, "requant": worst}
    return layer


def _maxpool_layer(lt, sin, sout, common) -> IntLayer:
    """Max pooling passes its input integers through: input and output share one grid (no requantization, as
    DORY's max-pool template has none). DORY pads with zeros, which is the identity only for unsigned inputs."""
    name = common["name"]
    if (sin["bits"], sin["signed"]) != (sout["bits"], sout["signed"]) or abs(
        sin["scale"] - sout["scale"]
    ) > 1e-12 * sin["scale"]:
        raise IntegerizationError(f"layer {name!r}: a max pool's input and output must share one grid")
    if any(lt.padding) and sin["signed"]:
        raise IntegerizationError(
            f"layer {name!r}: DORY pads max pooling with zeros; a padded max pool needs an unsigned input"
        )
    return IntLayer(**common)


def _add_layer(ins, sout, common) -> IntLayer:
    """Residual add: each input is requantized to a common 8-bit step ``s_c``, summed, then requantized.

    ``s_c`` is the finest step at which both input grids fit the adder's 8-bit intermediate (its range follows
    each input's signedness), so no representable input value is clipped.
    """
    s_c = residual_add_step([(s["bits"], s["signed"], float(s["scale"])) for s in ins])
    rq = []
    for s in ins:
        x_bound = max_abs(s["bits"], s["signed"])
        rq.append(_shift_mul(float(s["scale"]) / s_c, x_bound, common["name"]))
    t_bound = sum(max_abs(8, s["signed"]) for s in ins)
    rq.append(_shift_mul(s_c / float(sout["scale"]), t_bound, common["name"]))
    worst = max(b * m + a for (m, a, _), b in zip(rq, [*(max_abs(s["bits"], s["signed"]) for s in ins), t_bound]))
    layer = IntLayer(**common, add_rq=tuple(rq))
    layer.bounds = {"requant": worst}
    return layer


def _shift_mul(ratio: float, x_bound: int, name: str) -> tuple[int, int, int]:
    """Largest shift s <= 24 with ``x_bound * m + 2^(s-1) < 2^31`` for ``m = round(ratio * 2^s)``."""
    for s in range(24, -1, -1):
        m = round(ratio * 2**s)
        a = 2 ** (s - 1) if s else 0
        if x_bound * m + a < 2**31:
            return m, a, s
    raise OverflowProofError(f"layer {name!r}: residual-add requantization cannot fit int32")


def _fits(name: str, what: str, bound: int, width: int) -> None:
    if bound >= 2 ** (width - 1):
        raise OverflowProofError(f"layer {name!r}: {what} can reach {bound}, which overflows int{width}")


def packing_multiple(*bits: int) -> int:
    """Channels must be a multiple of this for PULP-NN-mixed's sub-byte packing (8 / smallest width)."""
    return 8 // min(b for b in bits if b <= 8)


def check_packing(layer: IntLayer) -> None:
    """Reject channel counts that DORY's tiler and weight packing cannot run (8/bits values share a byte)."""
    lt = layer.layer_type
    out_bits = (layer.out_bits,) if layer.out_bits <= 8 else ()
    w_bits = (layer.w_bits,) if layer.w_bits else ()
    m = packing_multiple(*layer.in_bits, *w_bits, *out_bits)
    problems = []
    if lt.out_ch % m:
        problems.append(f"{lt.out_ch} output channels are not a multiple of {m}")
    m_in = packing_multiple(*layer.in_bits)
    if lt.in_ch % m_in:
        problems.append(f"{lt.in_ch} input channels do not pack into bytes at {min(layer.in_bits)} bits")
    if layer.op == "depthwise_conv2d" and layer.w_bits < 8 and lt.out_ch % 2:
        problems.append(f"depthwise with {layer.w_bits}-bit weights needs an even channel count")
    if problems:
        raise IntegerizationError(f"layer {layer.name!r}: DORY cannot pack it: {'; '.join(problems)}")
