"""Fit the pulp-model's free constants to a measured latency table (least squares on log latency).

The free constants (``FREE``: inner-loop efficiency, per-block and per-tile overheads, the per-layer fixed cost,
the depthwise per-output cost and transposition DMA, and the L3 bandwidth) are the ones the model's source note
marks as fitted or estimated; the instruction-count tables stay as derived from the kernels. The fit runs
Levenberg-Marquardt in log-parameter space (all constants stay positive) with finite-difference Jacobians; the
model is piecewise smooth (tile counts, max of DMA and compute), so the step is a few percent, not infinitesimal.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from fb_profile._constants import DEFAULT_FIT, FREE, Constants
from fb_profile._model import layer_cycles
from fb_profile._tiler import TilingError
from fb_schema import LatencyTable


@dataclass(frozen=True)
class Calibration:
    """Fitted constants and the relative errors of the model on the measured points before and after."""

    constants: Constants
    initial: Constants
    points: int
    skipped: int
    before: dict[str, float]
    after: dict[str, float]
    iterations: int
    fitted: tuple[str, ...] = DEFAULT_FIT

    def report(self) -> str:
        lines = [f"fitted {len(self.fitted)} constants of {self.constants.isa} on {self.points} measured points"
                 + (f" ({self.skipped} skipped: the model cannot tile them)" if self.skipped else "")]  # fmt: skip
        for name in self.fitted:
            a, b = getattr(self.initial, name), getattr(self.constants, name)
            lines.append(f"  {name:11s} {a:10.4g} -> {b:10.4g}  ({100 * (b / a - 1):+.1f} %)")
        for label, err in (("before", self.before), ("after", self.after)):
            lines.append(f"{label}: median |error| {100 * err['median']:.2f} %, max {100 * err['max']:.1f} %, "
                         f"rms log error {err['rms_log']:.4f}")  # fmt: skip
        return "\n".join(lines)


def _errors(pred: np.ndarray, meas: np.ndarray) -> dict[str, float]:
    rel = np.abs(pred / meas - 1)
    log = np.log(pred / meas)
    return {"median": float(np.median(rel)), "max": float(rel.max()), "rms_log": float(np.sqrt(np.mean(log**2)))}


def predict(c: Constants, points: Sequence, b_out: int) -> np.ndarray:
    """Model cycles of (LayerType, b_in, b_wt) points."""
    return np.array([max(layer_cycles(lt, a, w, c, b_out), 1) for lt, a, w in points], float)


def calibrate(
    initial: Constants,
    measured: LatencyTable,
    free: Sequence[str] = DEFAULT_FIT,
    max_iter: int = 50,
    step: float = 0.02,
) -> Calibration:
    """Fit ``free`` constants of ``initial`` so the model matches ``measured`` (min sum of squared log errors).

    Each constant stays within a factor 10 of its shipped value (``eta`` at most 1).

    Raises:
        ValueError: unknown constant names, or no measured point the model can evaluate.
    """
    unknown = set(free) - set(FREE)
    if unknown:
        raise ValueError(f"not a free model constant: {', '.join(sorted(unknown))}; free: {', '.join(FREE)}")
    b_out = measured.target.b_out
    points, meas, skipped = _usable_points(initial, measured)
    y = np.log(np.array(meas, float))
    names = list(free)
    theta = np.log([getattr(initial, n) for n in names])
    # Physical bounds: within a factor 10 of the shipped value; an efficiency never exceeds 1.
    lo, hi = theta - math.log(10), theta + math.log(10)
    hi = np.array([min(h, 0.0) if n == "eta" else h for n, h in zip(names, hi)])

    def constants(t: np.ndarray) -> Constants:
        return initial.with_free(**{n: float(math.exp(v)) for n, v in zip(names, t)})

    def residual(t: np.ndarray) -> np.ndarray:
        return np.log(predict(constants(t), points, b_out)) - y

    theta, r, it = _levenberg_marquardt(residual, theta, (lo, hi), max_iter, step)
    fitted = constants(theta)
    before = _errors(predict(initial, points, b_out), np.exp(y))
    after = _errors(np.exp(r + y), np.exp(y))
    return Calibration(fitted, initial, len(points), skipped, before, after, it, tuple(names))


def _usable_points(initial: Constants, measured: LatencyTable) -> tuple[list, list, int]:
    """The measured (LayerType, b_in, b_wt) points the model can evaluate, their latencies, and how many it cannot."""
    b_out = measured.target.b_out
    points, meas, skipped = [], [], 0
    for (key, a, w), value in measured.entries.items():
        lt = measured.layer_types[key]
        try:
            if value <= 0:
                raise TilingError("non-positive latency")
            layer_cycles(lt, a, w, initial, b_out)
        except (TilingError, KeyError):
            skipped += 1
            continue
        points.append((lt, a, w))
        meas.append(value)
    if not points:
        raise ValueError(f"{measured.target.name}: no measured point the {initial.isa} model can evaluate")
    return points, meas, skipped


def _levenberg_marquardt(residual, theta: np.ndarray, bounds: tuple[np.ndarray, np.ndarray], max_iter: int,
                         step: float) -> tuple[np.ndarray, np.ndarray, int]:  # fmt: skip
    """Minimize ``|residual(theta)|^2`` within ``bounds`` (finite-difference Jacobian of width ``step``); the
    parameters, their residual and the iterations run."""
    lo, hi = bounds
    r = residual(theta)
    cost, lam, it = float(r @ r), 1e-2, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (reported)
        jac = np.empty((len(r), len(theta)))
        for i in range(len(theta)):
            t = theta.copy()
            t[i] += step
            jac[:, i] = (residual(t) - r) / step
        g, h = jac.T @ r, jac.T @ jac
        improved = False
        for _ in range(8):
            delta = np.linalg.solve(h + lam * np.diag(np.diag(h) + 1e-9), -g)
            delta = np.clip(theta + np.clip(delta, -0.5, 0.5), lo, hi) - theta  # at most e^0.5 per step
            r_new = residual(theta + delta)
            c_new = float(r_new @ r_new)
            if c_new < cost:
                theta, r, lam, improved = theta + delta, r_new, max(lam / 3, 1e-6), True
                rel_gain, cost = (cost - c_new) / max(cost, 1e-30), c_new
                break
            lam *= 4
        if not improved or rel_gain < 1e-6:
            break
    return theta, r, it


def median_error(a: LatencyTable, b: LatencyTable) -> float:
    """Median |b / a - 1| over the common points of two tables."""
    common = [p for p in a.entries if p in b.entries and a.entries[p] > 0]
    return statistics.median(abs(b.entries[p] / a.entries[p] - 1) for p in common)
