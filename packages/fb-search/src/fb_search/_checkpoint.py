"""Orbax checkpoints of a QNet's whole state, and loading a checkpoint into a model of another mode.

A float checkpoint loads into a ``bb``, ``fixed`` or ``tqt`` model: kernels, biases, BatchNorm and calibrated
activation thresholds copy by path; TQT thresholds start at ``log2(t)`` (activations) and ``log2(max|w|)`` per
output channel (weights), QuantLab's "const"/"max" initializations.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from flax import nnx

from fb_schema import write_json
from fb_search.quant import TQTQuant


def save_checkpoint(model: nnx.Module, path: str | os.PathLike, meta: dict[str, Any]) -> str:
    """Save the model state (orbax, ``<path>/state``) and ``<path>/meta.json``; returns ``path``."""
    path = Path(path).absolute()
    path.mkdir(parents=True, exist_ok=True)
    state = jax.tree.map(np.asarray, nnx.to_pure_dict(nnx.state(model)))
    with ocp.StandardCheckpointer() as ckptr:
        ckptr.save(path / "state", state, force=True)
        ckptr.wait_until_finished()
    write_json(path / "meta.json", meta)
    return str(path)


def load_checkpoint(path: str | os.PathLike) -> tuple[dict, dict]:
    """(state as nested dicts of numpy arrays, meta) of a checkpoint directory."""
    path = Path(path).absolute()
    if not (path / "state").is_dir() or not (path / "meta.json").is_file():
        raise FileNotFoundError(f"{path}: not a checkpoint directory (expected state/ and meta.json)")
    with ocp.StandardCheckpointer() as ckptr:
        state = ckptr.restore(path / "state")
    return jax.tree.map(np.asarray, state), json.loads((path / "meta.json").read_text())


def _flat(tree: dict, prefix: tuple = ()) -> dict[tuple, Any]:
    out = {}
    for k, v in tree.items():
        if isinstance(v, dict):
            out.update(_flat(v, (*prefix, str(k))))
        else:
            out[(*prefix, str(k))] = v
    return out


def _set(tree: dict, path: tuple, value) -> None:
    for k in path[:-1]:
        tree = tree[k] if k in tree else tree[int(k)]
    tree[path[-1] if path[-1] in tree else int(path[-1])] = value


def load_into(model: nnx.Module, state: dict) -> list[str]:
    """Copy matching entries of a checkpoint ``state`` into ``model``; returns the paths left at init."""
    own = nnx.to_pure_dict(nnx.state(model))
    src = _flat(state)
    missing, fresh = [], []
    for path, value in _flat(own).items():
        if path[-1] == "levels":
            continue  # a quantizer's bit width: the model's NetConfig decides it, never the checkpoint
        if path in src and np.shape(src[path]) == np.shape(value):
            _set(own, path, np.asarray(src[path], dtype=np.asarray(value).dtype))
        elif path[-1] == "log_t" and path[-2] != "w_q" and (*path[:-1], "t") in src:
            _set(own, path, np.log2(np.asarray(src[(*path[:-1], "t")], np.float32)))
        elif path[-1] == "log_t" and path[-2] == "w_q":
            fresh.append(path[-3])
        else:
            missing.append("/".join(path))
    nnx.update(model, _to_state(model, own))
    init_weight_thresholds(model, fresh)
    return missing


def _to_state(model: nnx.Module, pure: dict) -> nnx.State:
    state = nnx.state(model)
    nnx.replace_by_pure_dict(state, pure)
    return state


def init_weight_thresholds(model: nnx.Module, names: list[str] | None = None) -> None:
    """TQT weight thresholds from the current kernels: ``log_t = log2(max|w|)`` per output channel."""
    for name, layer in model.layers.items():
        w_q = getattr(layer, "w_q", None)
        if isinstance(w_q, TQTQuant) and (names is None or name in names):
            w = np.asarray(layer.kernel[...])
            m = np.maximum(np.abs(w).reshape(-1, w.shape[-1]).max(0), 1e-8)
            w_q.log_t[...] = np.log2(m).astype(np.float32)
