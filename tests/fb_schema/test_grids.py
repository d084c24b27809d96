"""Integer grids and the residual adder's common step."""

import pytest

from fb_schema import grid, max_abs, residual_add_step


@pytest.mark.parametrize(
    ("bits", "signed", "expected"),
    [(2, True, (-2, 1)), (2, False, (0, 3)), (8, True, (-128, 127)), (8, False, (0, 255))],
)
def test_grid(bits, signed, expected):
    assert grid(bits, signed) == expected


def test_max_abs():
    assert max_abs(8, True) == 128 and max_abs(8, False) == 255 and max_abs(4, True) == 8


def test_residual_add_step_keeps_every_input_representable():
    inputs = [(4, False, 0.2), (8, True, 0.05), (2, True, 1.0)]
    s_c = residual_add_step(inputs)
    assert s_c == pytest.approx(max(0.2 * 15 / 255, 0.05 * 128 / 128, 1.0 * 2 / 128))
    for bits, signed, step in inputs:
        lo, hi = grid(bits, signed)
        lo8, hi8 = grid(8, signed)
        assert lo8 <= round(lo * step / s_c) and round(hi * step / s_c) <= hi8
    # Two 8-bit inputs of one signedness: the coarser step wins, and that input passes through unchanged.
    assert residual_add_step([(8, False, 0.03), (8, False, 0.07)]) == 0.07
