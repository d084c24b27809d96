"""Regression test: ``max_shift=0`` is a shift bound like any other, not "use the default"."""

import pytest

from fb_deploy import IntegerizationError, integerize


def test_max_shift_zero_is_honoured(golden_qn):
    default = integerize(golden_qn, 32)
    assert max(layer.shift for layer in default.layers if layer.shift is not None) > 0
    # With D = 2^0 the multipliers of this network round to 0: refused, naming the shift, instead of shift 24.
    with pytest.raises(IntegerizationError, match="only with shift 0"):
        integerize(golden_qn, 32, max_shift=0)
    small = integerize(golden_qn, 64, max_shift=20)  # the conv/linear requantization shifts (adds have their own)
    assert max(layer.shift for layer in small.layers if layer.shift is not None and layer.w_bits) == 20
