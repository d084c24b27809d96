"""Integer grids and the residual adder's common step: arithmetic that producer and consumer must agree on."""

from __future__ import annotations

from collections.abc import Sequence


def grid(bits: int, signed: bool) -> tuple[int, int]:
    """Integer range of a ``bits``-wide tensor: ``[-2^(b-1), 2^(b-1) - 1]`` signed, ``[0, 2^b - 1]`` unsigned.

    Example:
        >>> grid(4, True), grid(4, False)
        ((-8, 7), (0, 15))
    """
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)


def max_abs(bits: int, signed: bool) -> int:
    """Largest magnitude on the grid (128 for signed 8 bit, 255 for unsigned 8 bit)."""
    lo, hi = grid(bits, signed)
    return max(-lo, hi)


ADDER_BITS = 8


def residual_add_step(inputs: Sequence[tuple[int, bool, float]]) -> float:
    """The step to which the residual adder requantizes each input before summing them.

    DORY's adder (pulp-nn-mixed ``pulp_nn_add``) brings every input to an 8-bit intermediate,
    ``t_i = clip8(round_half_up(x_i * step_i / s_c))``, adds the ``t_i`` and requantizes the sum to the output
    grid. ``s_c`` is the finest step at which every input grid fits its 8-bit intermediate, so no representable
    input value is clipped. A fake-quant model that adds the same ``t_i * s_c`` reproduces the integer adder.

    Args:
        inputs: (bits, signed, step) of each input tensor.

    Example:
        >>> residual_add_step([(8, False, 0.02), (8, True, 0.05)])
        0.05
        >>> residual_add_step([(4, False, 0.2), (8, False, 0.01)])  # 4-bit input: 15 levels fit in 255
        0.011764705882352941
    """
    return max(step * max_abs(bits, signed) / max_abs(ADDER_BITS, signed) for bits, signed, step in inputs)
