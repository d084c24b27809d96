"""Per-layer sensitivity of a searched network: the validation cross-entropy increase when one layer's gates are
forced to a (b_in, b_wt) pair. Every forcing of a network runs in one compiled call (a loop over the forcings
inside ``jit``, the gate values as traced inputs), compiled once per network structure."""

from __future__ import annotations

import functools

import jax
import numpy as np
from flax import nnx

from fb_search._data import Dataset
from fb_search._train import cross_entropy, predict, pure

SENSITIVITY_IMAGES = 160  # the first validation images
BITS_PHI = {2: (-10.0, -10.0), 4: (10.0, -10.0), 8: (10.0, 10.0)}  # gate locations forcing a bit width


def _searched_layers(model) -> list[tuple[str, bool, bool]]:
    """(name, has its own input gates, input gates shared with the weights) of every searched layer."""
    out = []
    for name, _ in model.mac_ratio:
        layer = model.layers[name]
        w_phi, a_phi = getattr(layer.w_q, "phi", None), getattr(layer.in_q, "phi", None)
        if w_phi is not None:
            out.append((name, a_phi is not None and a_phi is not w_phi, a_phi is w_phi))
        # a layer with fixed weights (the first) has no gates to force
    return out


def forcings(model) -> tuple[list[tuple[str, str]], np.ndarray, np.ndarray]:
    """Every (layer, "b_in,b_wt") forcing and, per forcing, the weight and input gate values of all searched
    layers (arrays ``(forcings, layers, 2)``; layers not forced keep their current gates). Locked layers get
    diagonal pairs only; a layer whose input is fixed gets ``b_in`` of that input."""
    layers = _searched_layers(model)
    current_w = np.stack([np.asarray(model.layers[n].w_q.phi[...]) for n, _, _ in layers])
    current_a = np.stack([np.asarray(model.layers[n].in_q.phi[...]) if own else np.zeros(2) for n, own, _ in layers])
    keys, ws, as_ = [], [], []
    for li, (name, own, locked) in enumerate(layers):
        for b_in in (2, 4, 8) if (own or locked) else (model.layers[name].in_q.bits,):
            for b_wt in (2, 4, 8):
                if locked and b_in != b_wt:
                    continue
                w, a = current_w.copy(), current_a.copy()
                w[li] = BITS_PHI[b_wt]
                if own:
                    a[li] = BITS_PHI[b_in]
                keys.append((name, f"{b_in},{b_wt}"))
                ws.append(w)
                as_.append(a)
    return keys, np.asarray(ws, np.float32), np.asarray(as_, np.float32)


@functools.lru_cache(maxsize=16)
def _forced_ce(graphdef, layers: tuple[tuple[str, bool, bool], ...]):
    """Jitted ``(state, x, y, w_phi, a_phi) -> CE per forcing`` (a sequential loop, the same forward as predict)."""

    @jax.jit
    def fn(state, x, y, w_phi, a_phi):
        def one(phis):
            model = nnx.merge(graphdef, state)
            for li, (name, own, _) in enumerate(layers):
                model.layers[name].w_q.phi[...] = phis[0][li]
                if own:
                    model.layers[name].in_q.phi[...] = phis[1][li]
            return cross_entropy(model(x, None), y)

        return jax.lax.map(one, (w_phi, a_phi))

    return fn


def layer_sensitivity(model, data: Dataset) -> dict[str, dict[str, float]]:
    """Per layer and reachable (b_in, b_wt): validation CE increase over the searched config when only that
    layer's gates are forced to the pair (locked: diagonal pairs; fixed inputs: b_in 8), on the first 160
    validation images."""
    x, y = data.val_subset(SENSITIVITY_IMAGES)
    base = float(cross_entropy(predict(model, x), y))
    keys, w_phi, a_phi = forcings(model)
    model.eval()
    graphdef, state = nnx.split(model)
    ces = np.asarray(_forced_ce(graphdef, tuple(_searched_layers(model)))(pure(state), x, y, w_phi, a_phi))
    out: dict[str, dict[str, float]] = {}
    for (name, pair), ce in zip(keys, ces):
        out.setdefault(name, {})[pair] = float(ce) - base
    return out
