"""Float and fake-quant ONNX export through jax2onnx (the ``[onnx]`` extra).

Convs are switched to their ``conv_general_dilated`` form first (depthwise: one ``Conv`` with ``group = C``
instead of the taps' slices; pointwise: ``Conv`` instead of the training form's ``MatMul``), and jax2onnx's stale
NHWC ``value_info`` entries are dropped so that strict shape inference passes.
"""

from __future__ import annotations

import os
from pathlib import Path

from fb_schema import write_atomic
from fb_search._model import QNet


def to_onnx_model(model: QNet, batch: str | int = "B", opset: int = 23):
    """An ``onnx.ModelProto`` of ``model``'s deterministic forward (eval mode), input NHWC float in [0, 1]."""
    try:
        from jax2onnx import to_onnx
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise RuntimeError("ONNX export needs the [onnx] extra: pip install 'fb-search[onnx]'") from exc
    model.eval()
    previous = {n: (layer.dw_impl, layer.fast) for n, layer in model.layers.items() if hasattr(layer, "dw_impl")}
    model.set_attributes(dw_impl="grouped", fast=False, raise_if_not_found=False)
    try:
        proto = to_onnx(lambda x: model(x, None), [(batch, *model.input_shape)], model_name=model.network, opset=opset)
    finally:
        for name, (impl, fast) in previous.items():
            model.layers[name].dw_impl, model.layers[name].fast = impl, fast
    del proto.graph.value_info[:]
    return proto


def export_onnx(model: QNet, path: str | os.PathLike, batch: str | int = "B") -> Path:
    """Write the ONNX file of ``model`` atomically; returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)  # an unwritable place fails before the slow conversion
    proto = to_onnx_model(model, batch)
    write_atomic(path, proto.SerializeToString())
    return path
