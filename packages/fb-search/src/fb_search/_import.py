"""Bring a float network trained elsewhere: ONNX -> topology file + float checkpoint, and float prediction.

The converter is fb-profile's (``fb_profile.import_onnx``, shared with ``fb-profile --onnx``); this module puts
its weights into a float ``QNet``, calibrates the activation thresholds (on the user's data, or on inputs drawn
uniformly from the input range when there is none) and writes ``DIR/topology.json`` and
``DIR/checkpoints/float``.
"""

from __future__ import annotations

import os
from pathlib import Path

import jax.numpy as jnp
import numpy as np
from flax import nnx

from fb_schema.topologies import Topology, save_topology
from fb_search._checkpoint import save_checkpoint
from fb_search._data import Dataset
from fb_search._model import QNet
from fb_search._train import calibrate

CALIBRATION_IMAGES = 512


def _converter():
    try:
        from fb_profile import import_onnx
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise RuntimeError("ONNX import needs the [onnx] extra: pip install 'fb-search[onnx]'") from exc
    return import_onnx


def set_weights(model: QNet, weights: dict[str, dict]) -> None:
    """Copy imported float weights (HWIO kernels, biases, raw BN statistics) into a float model."""
    for name, w in weights.items():
        layer = model.layers[name]
        layer.kernel[...] = jnp.asarray(w["kernel"], jnp.float32)
        if "bias" in w:
            layer.bias[...] = jnp.asarray(w["bias"], jnp.float32)
        if "bn" in w:
            bn = w["bn"]
            layer.bn.scale[...], layer.bn.bias[...] = jnp.asarray(bn["gamma"]), jnp.asarray(bn["beta"])
            layer.bn.mean[...], layer.bn.var[...] = jnp.asarray(bn["mean"]), jnp.asarray(bn["var"])


def import_onnx_model(
    onnx_path: str | os.PathLike,
    out_dir: str | os.PathLike,
    input_range: tuple[float, float],
    data: Dataset | None = None,
    name: str | None = None,
) -> tuple[Topology, str]:
    """Write ``out_dir/topology.json`` and the float checkpoint ``out_dir/checkpoints/float``.

    Returns:
      (the topology, the checkpoint path).
    """
    from fb_search._api import _meta  # the checkpoint metadata every stage writes

    imported = _converter()(onnx_path, name=name, input_range=input_range)
    topology = imported.topology
    model = QNet(topology, "float", rngs=nnx.Rngs(0))
    set_weights(model, imported.weights)
    if data is not None:
        x = data.train_subset(CALIBRATION_IMAGES)[0]
    else:
        lo, hi = topology.input_range
        x = np.random.default_rng(0).uniform(lo, hi, (64, *topology.input_shape)).astype(np.float32)
    calibrate(model, x)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_topology(topology, out / "topology.json")
    meta = _meta(topology, "float", seed=0, steps=0, imported_from=str(Path(onnx_path).absolute()))
    meta["calibration"] = "data" if data is not None else "uniform over the input range"
    ckpt = save_checkpoint(model, out / "checkpoints" / "float", meta)
    return topology, ckpt
