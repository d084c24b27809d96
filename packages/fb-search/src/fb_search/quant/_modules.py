"""Quantizer modules (Flax NNX): float (calibrating), fixed-precision, Bayesian Bits and TQT.

Every quantizer is called as ``q(x, key=None)`` and returns a fake-quantized tensor in real units. Weight
quantizers are per output channel (last axis, HWIO); activation quantizers are per tensor. Grids follow QuantLab
(:mod:`fb_search.quant._grids`); Free Bits, arXiv 2307.02894.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fb_schema import max_abs
from fb_search.quant import _bayesian_bits as bb
from fb_search.quant._grids import fq_ste, grid, grid_levels, level_grid, step, weight_threshold
from fb_search.quant._tqt import tqt_quant, tqt_quant_levels

CALIBRATION_QUANTILE = 0.999  # activation threshold: 99.9th percentile of the float activations


class Gates(nnx.Param):
    """Bayesian Bits gate locations ``phi`` (one per upgrade 2->4, 4->8)."""


class LogThreshold(nnx.Param):
    """TQT's learned ``log2`` threshold."""


class Levels(nnx.Variable):
    """A quantizer's level count ``2^b`` (float32, exact): the bit width held as state, not as structure.

    Networks that differ only in precisions then have one graph definition and share every compiled program
    (the train step, evaluation, BatchNorm re-estimation). Not a Param, so no optimizer ever moves it, and a
    checkpoint never overrides it (the model's NetConfig decides the precisions).
    """


class ActRange(nnx.Variable):
    """A calibrated, untrained activation threshold ``t`` (grid ``[0, t]`` or ``[-t, ...]``)."""


class Quantizer(nnx.Module):
    """Common attributes: ``signed`` grid, ``is_weight`` (per-channel ``max|w|`` threshold).

    A quantizer at a set precision keeps it as :class:`Levels` state (:meth:`set_bits`); :attr:`bits` reads it
    back on the host (None for a float quantizer).
    """

    def __init__(self, signed: bool, is_weight: bool, t: float = 6.0, act_range: bool = True):
        self.signed = signed
        self.is_weight = is_weight
        if act_range and not is_weight:  # activations keep a calibrated range, unless the subclass learns its own
            self.t = ActRange(jnp.asarray(t, jnp.float32))

    def set_bits(self, bits: int) -> None:
        """Set the bit width (a state update: the compiled programs of the network stay valid)."""
        if hasattr(self, "levels"):
            self.levels[...] = jnp.asarray(grid_levels(bits))
        else:
            self.levels = Levels(jnp.asarray(grid_levels(bits)))

    @property
    def bits(self) -> int | None:
        """The bit width (host value; inside a traced function use :meth:`grid`)."""
        levels = getattr(self, "levels", None)
        return None if levels is None else int(np.asarray(levels[...])).bit_length() - 1

    def traced_levels(self) -> jax.Array | None:
        """The level count if it is traced (inside a compiled function), else None: eager code and tracers that
        capture the model as constants (ONNX export) compute with the Python int, as a static quantizer did."""
        levels = self.levels[...]
        return levels if isinstance(levels, jax.core.Tracer) else None

    def grid(self, t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(lo, hi, eps) of the current grid at threshold ``t``."""
        levels = self.traced_levels()
        return grid(t, self.bits, self.signed) if levels is None else level_grid(t, levels, self.signed)

    def max_abs(self) -> jax.Array | int:
        """Largest integer magnitude of the grid (``fb_schema.max_abs``; traced float32 inside a compiled function)."""
        levels = self.traced_levels()
        if levels is None:
            return max_abs(self.bits, self.signed)
        return levels / 2 if self.signed else levels - 1

    def threshold(self, x: jax.Array) -> jax.Array:
        return weight_threshold(x) if self.is_weight else jax.lax.stop_gradient(self.t[...])

    def scale(self, x: jax.Array | None = None) -> np.ndarray:
        """The step of the current grid (per channel for weights, given the weights ``x``)."""
        return np.asarray(step(self.threshold(x), self.bits, self.signed))


class FloatQuant(Quantizer):
    """No quantization. With ``calibrating=True`` an activation quantizer records its threshold from ``x``."""

    def __init__(self, signed: bool, is_weight: bool, t: float = 6.0):
        super().__init__(signed, is_weight, t)
        self.calibrating = False

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        if self.calibrating and not self.is_weight:
            self.t[...] = jnp.maximum(jnp.quantile(jnp.abs(x), CALIBRATION_QUANTILE), 1e-3)
        return x


class FixedQuant(Quantizer):
    """A fixed-precision quantizer: ``bits`` on the QuantLab grid with threshold ``max|w|`` or ``t``."""

    def __init__(self, bits: int, signed: bool, is_weight: bool, t: float = 6.0):
        super().__init__(signed, is_weight, t)
        self.set_bits(bits)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        return fq_ste(x, *self.grid(self.threshold(x)))


class BBQuant(Quantizer):
    """The Bayesian Bits quantizer over precisions 2 -> 4 -> 8 (no pruning gate).

    Args:
      signed, is_weight, t: as :class:`Quantizer`.
      phi: a :class:`Gates` variable to share (the locked variant passes the weight quantizer's), or None.
      gate_init: initial ``phi`` (QuantLab 2.0: P(z != 0) = 0.96, the search starts at 8 bits).
      temperature: hard-concrete temperature (QuantLab 0.5).
      per_sample: one gate sample per batch element (QuantLab's activations).
      quantlab_mask: QuantLab's lowest-precision gradient mask (see :func:`bb_quantize`).

    ``fused`` (attribute, default False; ``QNet(fused_kernels=True)`` sets it) trains with
    ``bb_quantize(..., fused=True)``: the same values and gradients, a hand-written backward.
    """

    def __init__(
        self,
        signed: bool,
        is_weight: bool,
        t: float = 6.0,
        phi: Gates | None = None,
        gate_init: float = 2.0,
        temperature: float = 0.5,
        per_sample: bool = False,
        quantlab_mask: bool = False,
    ):
        super().__init__(signed, is_weight, t)
        self.phi = phi if phi is not None else Gates(jnp.full((len(bb.PRECS) - 1,), gate_init, jnp.float32))
        self.temperature = temperature
        self.per_sample = per_sample
        self.quantlab_mask = quantlab_mask
        self.deterministic = False
        self.fused = False

    @property
    def bits(self) -> int:  # type: ignore[override]
        return bb.bits_from_gates(np.asarray(self.phi[...]), self.temperature)

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        if self.deterministic or key is None:
            key = None
        return bb.bb_quantize(
            x,
            self.threshold(x),
            self.signed,
            self.phi[...],
            self.temperature,
            key,
            per_sample=self.per_sample and not self.is_weight,
            quantlab_mask=self.quantlab_mask,
            fused=self.fused,
        )

    def expected_bits(self) -> jax.Array:
        return bb.expected_bits(self.phi[...], self.temperature)

    def cost(self) -> jax.Array:
        return bb.gate_cost(self.phi[...], self.temperature)


class TQTQuant(Quantizer):
    """Generalized TQT at ``bits``: threshold ``2^log_t`` learned (per channel for weights)."""

    def __init__(self, bits: int, signed: bool, is_weight: bool, t: float | np.ndarray = 6.0):
        super().__init__(signed, is_weight, act_range=False)  # the threshold is the learned log_t
        self.set_bits(bits)
        self.log_t = LogThreshold(jnp.log2(jnp.asarray(t, jnp.float32)))

    def threshold(self, x: jax.Array | None = None) -> jax.Array:
        return jnp.exp2(self.log_t[...])

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        levels = self.traced_levels()
        if levels is None:
            return tqt_quant(x, self.log_t[...], self.bits, self.signed)
        return tqt_quant_levels(x, self.log_t[...], levels, self.signed)
