"""The integer network: every layer as integer weights plus integer requantization, nothing real-valued left.

Stored as ``freebits/integer-network/v1`` JSON with a side ``.npz`` (same stem), like the QuantizedNetwork it
comes from. Semantics (bit-exact, see ``run_reference``), following the DORY / PULP-NN kernels (Burrello et al.,
"DORY", IEEE TC 2021) and QuantLab's integerization:

* conv / depthwise / linear: ``acc = sum(x * w) (+ bias)`` in int32, then, unless the layer is the network's
  int32 output, ``y = clip((acc * mul[c] + add[c]) >> shift, grid(out))``;
* avgpool: ``y = clip((sum_window(x) * (mul // k) + add) >> shift, grid(out))`` with ``k = kh * kw``;
* add: ``t_i = clip((x_i * m_i + a_i) >> s_i, 8-bit grid of input i)``,
  ``y = clip(((t_1 + t_2) * m_o + a_o) >> s_o, grid(out))``.

``>>`` is an arithmetic shift (floor division by ``2^shift``); rounding is folded into ``add``.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fb_schema import LayerType, SchemaError, grid, read_json, write_atomic, write_json

INTEGER_NETWORK_SCHEMA = "freebits/integer-network/v1"
FLOAT_ARRAYS = ("logit_scale", "ref_inputs", "ref_logits")  # everything else in the .npz is an integer


@dataclass
class IntLayer:
    """One fused DORY layer (conv/linear + requant, pool + requant, residual add).

    ``mul``/``add`` are per output channel for conv/linear and scalars (shape ``()``) for avgpool; ``add_rq``
    holds the residual adder's ``((m1, a1, s1), (m2, a2, s2), (mo, ao, so))``.
    """

    name: str
    op: str
    inputs: tuple[str, ...]
    output: str
    layer_type: LayerType
    in_bits: tuple[int, ...]
    in_signed: tuple[bool, ...]
    out_bits: int
    out_signed: bool
    w_bits: int | None = None
    weight: np.ndarray | None = None  # int64, HWIO (depthwise kh,kw,1,C; linear in,out with HWC-ordered rows)
    bias: np.ndarray | None = None  # int64 [C]
    mul: np.ndarray | None = None  # int64
    add: np.ndarray | None = None  # int64
    shift: int | None = None
    add_rq: tuple[tuple[int, int, int], ...] | None = None
    bounds: dict[str, int] = field(default_factory=dict)  # proven worst-case magnitudes (see _integerize)

    @property
    def requantized(self) -> bool:
        return self.mul is not None or self.add_rq is not None


@dataclass
class IntegerNetwork:
    """A whole integer network with its input grid, the real scale of its int32 logits and reference data."""

    network: str
    input_tensor: str
    input_shape_nhwc: tuple[int, int, int, int]
    input_bits: int
    input_signed: bool
    input_scale: float
    layers: list[IntLayer]
    requant_bits: int  # DORY's BNRelu_bits: width of acc * mul + add
    logit_scale: np.ndarray  # real value of one logit LSB per class
    ref_inputs: np.ndarray | None = None  # float NHWC in [0, 1] (the artifact's reference inputs)
    ref_logits: np.ndarray | None = None  # the artifact's fake-quant logits
    config_sha256: str | None = None

    @property
    def output(self) -> str:
        return self.layers[-1].output

    def quantize_input(self, x_real: np.ndarray) -> np.ndarray:
        """Real inputs (NHWC) onto the input grid, as the fake-quant model rounds them (half to even)."""
        lo, hi = grid(self.input_bits, self.input_signed)
        return np.clip(np.round(np.asarray(x_real, np.float64) / self.input_scale), lo, hi).astype(np.int64)

    # -- persistence --------------------------------------------------------------------------------------------
    def save(self, json_path: str | os.PathLike) -> None:
        """Write ``<stem>.json`` and ``<stem>.npz`` atomically."""
        json_path = Path(json_path)
        arrays: dict[str, np.ndarray] = {"logit_scale": self.logit_scale}
        if self.ref_inputs is not None:
            arrays["ref_inputs"], arrays["ref_logits"] = self.ref_inputs, self.ref_logits
        layers = []
        for layer in self.layers:
            doc: dict[str, Any] = {
                "name": layer.name,
                "op": layer.op,
                "inputs": list(layer.inputs),
                "output": layer.output,
                "layer_type": layer.layer_type.key,
                "in_bits": list(layer.in_bits),
                "in_signed": list(layer.in_signed),
                "out_bits": layer.out_bits,
                "out_signed": layer.out_signed,
                "w_bits": layer.w_bits,
                "shift": layer.shift,
                "add_rq": None if layer.add_rq is None else [list(t) for t in layer.add_rq],
                "bounds": layer.bounds,
            }
            for name in ("weight", "bias", "mul", "add"):
                value = getattr(layer, name)
                doc[name] = None if value is None else f"{layer.name}.{name}"
                if value is not None:
                    arrays[f"{layer.name}.{name}"] = value
            layers.append(doc)
        doc = {
            "schema": INTEGER_NETWORK_SCHEMA,
            "network": self.network,
            "config_sha256": self.config_sha256,
            "input": {
                "tensor": self.input_tensor,
                "shape_nhwc": list(self.input_shape_nhwc),
                "bits": self.input_bits,
                "signed": self.input_signed,
                "scale": self.input_scale,
            },
            "requant_bits": self.requant_bits,
            "layers": layers,
        }
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        write_atomic(json_path.with_suffix(".npz"), buf.getvalue())
        write_json(json_path, doc)

    @classmethod
    def load(cls, json_path: str | os.PathLike) -> IntegerNetwork:
        json_path = Path(json_path)
        doc = read_json(json_path)
        if not isinstance(doc, dict) or doc.get("schema") != INTEGER_NETWORK_SCHEMA:
            raise SchemaError(str(json_path), "schema", f"{INTEGER_NETWORK_SCHEMA!r}")
        npz_path = json_path.with_suffix(".npz")
        try:
            with np.load(npz_path) as npz:
                arrays = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError) as exc:  # missing, not a zip, object arrays (no pickles)
            raise SchemaError(str(npz_path), "<file>", f"a readable .npz archive ({exc})") from None
        for key, value in arrays.items():
            if value.dtype.kind not in "biu" + ("f" if key in FLOAT_ARRAYS else ""):
                raise SchemaError(str(npz_path), key, f"an integer array, got dtype {value.dtype}")
        try:
            layers = []
            for item in doc["layers"]:
                get = {n: (None if item[n] is None else arrays[item[n]]) for n in ("weight", "bias", "mul", "add")}
                layers.append(
                    IntLayer(
                        name=item["name"],
                        op=item["op"],
                        inputs=tuple(item["inputs"]),
                        output=item["output"],
                        layer_type=LayerType.from_key(item["layer_type"]),
                        in_bits=tuple(item["in_bits"]),
                        in_signed=tuple(item["in_signed"]),
                        out_bits=item["out_bits"],
                        out_signed=item["out_signed"],
                        w_bits=item["w_bits"],
                        shift=item["shift"],
                        add_rq=None if item["add_rq"] is None else tuple(tuple(t) for t in item["add_rq"]),
                        bounds=item["bounds"],
                        **get,
                    )
                )
            inp = doc["input"]
            return cls(
                network=doc["network"],
                input_tensor=inp["tensor"],
                input_shape_nhwc=tuple(inp["shape_nhwc"]),
                input_bits=inp["bits"],
                input_signed=inp["signed"],
                input_scale=inp["scale"],
                layers=layers,
                requant_bits=doc["requant_bits"],
                logit_scale=arrays["logit_scale"],
                ref_inputs=arrays.get("ref_inputs"),
                ref_logits=arrays.get("ref_logits"),
                config_sha256=doc.get("config_sha256"),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SchemaError(
                str(json_path), "<network>", f"a readable integer network ({type(exc).__name__}: {exc})"
            ) from None


def is_integer_network(path: str | os.PathLike) -> bool:
    """Whether a JSON file is an integer network (rather than a QuantizedNetwork)."""
    try:
        doc = read_json(path)
    except (SchemaError, OSError):
        return False
    return isinstance(doc, dict) and doc.get("schema") == INTEGER_NETWORK_SCHEMA
