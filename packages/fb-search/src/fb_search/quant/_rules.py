"""Quantization rules: which quantizer each tensor of a ``QNet`` gets (in the spirit of Qwix and AQT).

A :class:`QuantRules` is an ordered list of :class:`QuantRule`; the first rule that matches a tensor (by layer
name, weight or activation, fixed or configurable precision) builds its quantizer. A rule names one of the
built-in kinds (``"float"``, ``"fixed"``, ``"bb"``, ``"tqt"``) or is any callable taking a :class:`QuantTensor`
and returning a :class:`~fb_search.quant.Quantizer`. :meth:`QuantRules.default` gives a ``QNet`` mode's own
choice. The network input is not governed by rules: it is always the 8-bit grid over the topology's input range
(unquantized in ``float`` mode), as deployment feeds it.

Example:
    TQT on every weight, fixed (calibrated-threshold) activations:

    >>> from fb_search.quant import QuantRule, QuantRules, QuantTensor, FixedQuant, TQTQuant
    >>> rules = QuantRules((QuantRule("tqt", weights=True), QuantRule("fixed")))
    >>> w = QuantTensor("conv1", bits=4, fixed=False, signed=True, is_weight=True, threshold=1.0)
    >>> a = QuantTensor("conv1", bits=8, fixed=False, signed=False, is_weight=False, threshold=6.0)
    >>> type(rules.quantizer(w)).__name__, type(rules.quantizer(a)).__name__
    ('TQTQuant', 'FixedQuant')
    >>> rules.quantizer(w).bits
    4
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from fb_search.quant._modules import BBQuant, FixedQuant, FloatQuant, Gates, Quantizer, TQTQuant

VARIANTS = ("orig", "locked")
KINDS = ("float", "fixed", "bb", "tqt")


@dataclass(frozen=True)
class BBOptions:
    """Bayesian Bits settings (QuantLab defaults: phi_0 = 2, T = 0.5, per-sample activation gates)."""

    variant: str = "orig"
    gate_init: float = 2.0
    temperature: float = 0.5
    per_sample: bool = True
    quantlab_mask: bool = False


@dataclass(frozen=True, eq=False)  # thresholds are arrays: compare tensors by identity
class QuantTensor:
    """What a rule sees of one tensor to quantize.

    Attributes:
      layer: the layer whose quantizer this is (a conv/linear for its weights and input, else the producer).
      bits: the precision the network asks for (its NetConfig's, or 8 where there is none).
      fixed: the precision is not searched (first layer's weights, inputs fixed by the topology, tensors read
        only by adds and pools).
      signed: the grid is signed (almost symmetric) rather than ``[0, t]``.
      is_weight: a kernel (per-output-channel threshold) rather than an activation (per-tensor threshold).
      threshold: the initial threshold (weights: per channel; activations: the calibrated or default ``t``).
      phi: Bayesian Bits gates to share (the locked variant's input quantizer), or None.
    """

    layer: str
    bits: int
    fixed: bool
    signed: bool
    is_weight: bool
    threshold: float | np.ndarray = 6.0
    phi: Gates | None = None


Factory = Callable[[QuantTensor], Quantizer]


@dataclass(frozen=True)
class QuantRule:
    """One rule: the tensors it matches and the quantizer they get.

    Attributes:
      quantizer: a built-in kind (``"float"``, ``"fixed"``, ``"bb"``, ``"tqt"``) or a callable
        ``QuantTensor -> Quantizer``.
      layers: regular expression the layer name must match in full (default: every layer).
      weights: True matches weights only, False activations only, None both.
      fixed: True matches fixed-precision tensors only, False configurable ones only, None both.
    """

    quantizer: str | Factory
    layers: str = ".*"
    weights: bool | None = None
    fixed: bool | None = None

    def __post_init__(self):
        if isinstance(self.quantizer, str) and self.quantizer not in KINDS:
            raise ValueError(f"QuantRule.quantizer: expected one of {', '.join(KINDS)} or a callable, "
                             f"got {self.quantizer!r}")  # fmt: skip
        re.compile(self.layers)

    def matches(self, tensor: QuantTensor) -> bool:
        """Whether this rule applies to ``tensor``."""
        return (
            re.fullmatch(self.layers, tensor.layer) is not None
            and self.weights in (None, tensor.is_weight)
            and self.fixed in (None, tensor.fixed)
        )


@dataclass(frozen=True)
class QuantRules:
    """An ordered list of rules (the first match wins) and the Bayesian Bits options of ``"bb"`` quantizers.

    Args:
      rules: the rules, tried in order; a tensor no rule matches is an error.
      bb: options of the ``"bb"`` kind.
    """

    rules: tuple[QuantRule, ...]
    bb: BBOptions = field(default_factory=BBOptions)

    @classmethod
    def default(cls, mode: str, bb: BBOptions | None = None) -> QuantRules:
        """The choice of a ``QNet`` mode: ``float``, ``fixed`` and ``tqt`` quantize every tensor with their own
        kind; ``bb`` searches the configurable tensors and keeps fixed ones at their fixed precision."""
        bb = BBOptions() if bb is None else bb
        if mode == "bb":
            return cls((QuantRule("fixed", fixed=True), QuantRule("bb")), bb)
        if mode not in KINDS:
            raise ValueError(f"mode: expected one of {', '.join(KINDS)}, got {mode!r}")
        return cls((QuantRule(mode),), bb)

    def quantizer(self, tensor: QuantTensor) -> Quantizer:
        """The quantizer of ``tensor`` from the first matching rule."""
        for rule in self.rules:
            if rule.matches(tensor):
                kind = rule.quantizer
                return kind(tensor) if callable(kind) else self._builtin(kind, tensor)
        side = "weights" if tensor.is_weight else "input activation"
        raise ValueError(f"QuantRules: no rule matches the {side} of layer {tensor.layer!r}")

    def _builtin(self, kind: str, t: QuantTensor) -> Quantizer:
        if kind == "float":
            return FloatQuant(t.signed, t.is_weight, t.threshold)
        if kind == "fixed":
            return FixedQuant(t.bits, t.signed, t.is_weight, t.threshold)
        if kind == "tqt":
            return TQTQuant(t.bits, t.signed, t.is_weight, t.threshold)
        bb = self.bb
        return BBQuant(
            t.signed, t.is_weight, t.threshold, t.phi, bb.gate_init, bb.temperature, bb.per_sample, bb.quantlab_mask
        )
