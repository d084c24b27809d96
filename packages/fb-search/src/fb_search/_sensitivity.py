"""Per-layer sensitivity of a searched network: the validation cross-entropy increase when one layer's gates are
forced to a (b_in, b_wt) pair. Each forcing is only another input state of predict's compiled forward (no
compilation of its own, no eager update of the model), all of them dispatched before any result is read."""

from __future__ import annotations

import numpy as np
from flax import nnx

from fb_search._data import Dataset
from fb_search._train import _eval_step, cross_entropy, predict, pure

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


def _set_path(tree: dict, path: tuple, value) -> dict:
    """A copy of nested dict ``tree`` with the leaf at ``path`` replaced (the other leaves shared)."""
    if not path:
        return value
    return {**tree, path[0]: _set_path(tree[path[0]], path[1:], value)}


def forced_states(model, w_phi: np.ndarray, a_phi: np.ndarray) -> list[dict]:
    """The model's eval state (plain arrays) under every forcing of :func:`forcings`.

    A shared gate variable (a locked layer's, or one tensor's quantizer read by several layers) has one path.
    """
    model.eval()
    graphdef, state = nnx.split(model)
    state = pure(state)
    paths = {id(v): tuple(p) for p, v in nnx.iter_graph(model) if isinstance(v, nnx.Variable)}
    targets = []
    for name, own, _ in _searched_layers(model):
        layer = model.layers[name]
        targets.append((paths[id(layer.w_q.phi)], paths[id(layer.in_q.phi)] if own else None))
    out = []
    for w, a in zip(w_phi, a_phi):
        forced = state
        for li, (w_path, a_path) in enumerate(targets):
            forced = _set_path(forced, w_path, w[li])
            if a_path is not None:
                forced = _set_path(forced, a_path, a[li])
        out.append(forced)
    return graphdef, out


def layer_sensitivity(model, data: Dataset) -> dict[str, dict[str, float]]:
    """Per layer and reachable (b_in, b_wt): validation CE increase over the searched config when only that
    layer's gates are forced to the pair (locked: diagonal pairs; fixed inputs: b_in 8), on the first 160
    validation images."""
    x, y = data.val_subset(SENSITIVITY_IMAGES)
    base = float(cross_entropy(predict(model, x), y))
    keys, w_phi, a_phi = forcings(model)
    graphdef, states = forced_states(model, w_phi, a_phi)
    fn = _eval_step(graphdef)  # predict's compiled forward: the forced gates are just other input values
    logits = [fn(state, x) for state in states]  # dispatched without waiting
    out: dict[str, dict[str, float]] = {}
    for (name, pair), lg in zip(keys, logits):
        out.setdefault(name, {})[pair] = float(cross_entropy(np.asarray(lg), y)) - base
    return out
