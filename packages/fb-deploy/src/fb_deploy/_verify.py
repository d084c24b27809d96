"""``verify``: run a DORY model directory's ONNX Runtime twin against its golden files and the reference executor.

Checks, in order: the twin passes ``onnx.checker``; on the golden input it reproduces every ``out_layer{i}.txt``
bit for bit; when the directory holds the integer network, the twin equals the integer reference executor on
random inputs, and the integer logits are compared with the artifact's fake-quant reference logits.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

from fb_deploy._agreement import layer_agreement
from fb_deploy._checker import check_model, errors
from fb_deploy._dory_graph import DoryGraph, load_model_dir, parse
from fb_deploy._errors import DeployError
from fb_deploy._export import read_golden
from fb_deploy._integer_network import IntegerNetwork, grid
from fb_deploy._reference import run_layers
from fb_deploy._twin import build_twin
from fb_schema import QuantizedNetwork

# Layer-local tolerance against the fake-quant model: a rounded multiplier errs by under 1/128 of a step and
# DORY's residual adder by one step, so a correct integer layer is never more than one output step (the int32
# classifier: one LSB) away. An overflow of acc * mul + add departs by far more, while goldens and twin, both
# wrapping the same way, still agree bit for bit.
MAX_STEPS = 1


@dataclass
class VerifyReport:
    """What ``verify`` compared, and whether everything was bit-exact."""

    model_dir: str
    layers: int
    golden_layers_equal: int = 0
    golden_mismatches: list[str] = field(default_factory=list)
    random_inputs: int = 0
    random_equal: bool | None = None
    random_mismatches: list[str] = field(default_factory=list)
    fakequant: dict[str, float] | None = None
    layer_agreement: list[dict] | None = None
    checksums: list[dict] = field(default_factory=list)  # per layer: DORY's byte sums of goldens and twin
    check_errors: list[str] = field(default_factory=list)  # checker errors the twin models (it still runs)
    max_steps: int = MAX_STEPS

    @property
    def departures(self) -> list[str]:
        """Layers whose integer outputs depart from the fake-quant ones by more than ``max_steps`` steps."""
        rows = self.layer_agreement or []
        return [f"{r['layer']} ({r['max_steps']} steps)" for r in rows if r["max_steps"] > self.max_steps]

    @property
    def ok(self) -> bool:
        return (
            not self.golden_mismatches
            and self.random_equal is not False
            and not self.departures
            and not self.check_errors
        )

    def to_json(self) -> dict:
        return {
            "model_dir": self.model_dir,
            "ok": self.ok,
            "layers": self.layers,
            "golden_layers_equal": self.golden_layers_equal,
            "golden_mismatches": self.golden_mismatches,
            "random_inputs": self.random_inputs,
            "random_equal": self.random_equal,
            "random_mismatches": self.random_mismatches,
            "fakequant": self.fakequant,
            "layer_agreement": self.layer_agreement,
            "checksums": self.checksums,
            "check_errors": self.check_errors,
            "max_steps": self.max_steps,
            "departures": self.departures,
        }


# Checker errors the twin reproduces (it computes what DORY computes), so verify still runs and shows the effect.
TWIN_MODELLED = {"residual-add-order"}


def dory_checksum(values: np.ndarray, bits: int) -> int:
    """DORY's checksum of a layer output: the sum of its bytes as stored in L2 (``net_utils.c: checksum``).

    Sub-byte values are packed little-end first (``HW_node._compress``); wider ones are little-endian bytes.
    """
    v = np.asarray(values, np.int64).reshape(-1)
    if bits <= 8:
        per = 8 // bits
        packed = ((v & (2**bits - 1)).reshape(-1, per) << (np.arange(per) * bits)).sum(axis=1)
        return int(packed.sum())
    return int(sum(((v >> (8 * k)) & 255).sum() for k in range(bits // 8)))


def twin_session(graph: DoryGraph, exact: int = 2**24) -> ort.InferenceSession:
    """An ORT session of the checked twin (single-threaded: results never depend on the machine)."""
    twin = build_twin(graph, exact)
    onnx.checker.check_model(twin, full_check=True)
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(twin.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def run_twin(session: ort.InferenceSession, x_nhwc: np.ndarray) -> list[np.ndarray]:
    """Every DORY layer's output for integer NHWC inputs, in NHWC (or ``[N, C]``) int64."""
    feed = {session.get_inputs()[0].name: np.asarray(x_nhwc, np.float32).transpose(0, 3, 1, 2)}
    outs = session.run(None, feed)
    return [o.transpose(0, 2, 3, 1) if o.ndim == 4 else o for o in outs]


def verify(
    model_dir: str | os.PathLike,
    n_random: int = 8,
    seed: int = 0,
    artifact: str | os.PathLike | None = None,
    max_steps: int = MAX_STEPS,
) -> VerifyReport:
    """Verify a DORY model directory written by ``export_dory`` (or any DORY QuantLab model with goldens).

    With ``artifact`` (the QuantizedNetwork it was made from), also report the layer-local agreement with the
    fake-quant model on the artifact's reference inputs (``layer_agreement``); the report is not ``ok`` when
    some layer departs from it by more than ``max_steps`` output steps.

    Raises:
        DeployError: the checker finds a hard-rule violation, or a golden file is missing.
    """
    onnx_path, config, directory = load_model_dir(model_dir)
    found = errors(check_model(onnx_path))
    blocking = [f for f in found if f.rule not in TWIN_MODELLED]
    if blocking:
        raise DeployError(f"{onnx_path}: {blocking[0]}")
    graph = parse(onnx.load(onnx_path), config)
    session = twin_session(graph)
    report = VerifyReport(str(directory), len(graph.layers), check_errors=[str(f) for f in found], max_steps=max_steps)
    _check_goldens(report, graph, session, config, directory)
    net_path = directory / "integer_network.json"
    if net_path.exists():
        net = IntegerNetwork.load(net_path)
        if len(net.layers) != len(graph.layers):
            raise DeployError(
                f"{onnx_path}: {len(graph.layers)} DORY layers, but {net_path.name} has {len(net.layers)}; "
                "the model is not the integer network beside it"
            )
        if n_random > 0:
            _check_random(report, net, session, n_random, seed)
        if net.ref_inputs is not None:
            report.fakequant = fakequant_agreement(net, session)
        if artifact is not None:
            report.layer_agreement = layer_agreement(QuantizedNetwork.load(artifact), net)
    return report


def _golden_input(graph: DoryGraph, config: dict, directory: Path) -> np.ndarray:
    """``input.txt`` as one NHWC integer image on the input grid (signed inputs may be written as bytes)."""
    c, h, w = graph.shapes[graph.input_name]
    x = read_golden(directory / "input.txt")
    if x.size != c * h * w:
        raise DeployError(f"{directory / 'input.txt'}: {x.size} values, the input [{h}, {w}, {c}] needs {c * h * w}")
    lo, hi = grid(int(config.get("input_bits", 8)), bool(config.get("input_signed", False)))
    if not config.get("input_signed", False) and x.min() < 0:
        x = x % 256
    elif config.get("input_signed", False) and x.max() > hi:
        x = np.where(x > hi, x - 2 ** int(config.get("input_bits", 8)), x)  # written as unsigned bytes
    return x.reshape(1, h, w, c)


def _check_goldens(report: VerifyReport, graph: DoryGraph, session: ort.InferenceSession, config: dict,
                   directory: Path) -> None:  # fmt: skip
    """Every layer's golden file against the twin on ``input.txt`` (values and DORY checksums)."""
    outs = run_twin(session, _golden_input(graph, config, directory))
    for i, (layer, out) in enumerate(zip(graph.layers, outs)):
        golden_path = directory / f"out_layer{i}.txt"
        if not golden_path.exists():
            raise DeployError(f"{golden_path}: missing (DORY needs a golden file for every layer)")
        golden = read_golden(golden_path)
        if golden.size == out.size:
            golden_sum, twin_sum = dory_checksum(golden, layer.out_bits), dory_checksum(out, layer.out_bits)
            report.checksums.append({"layer": layer.name, "golden": golden_sum, "twin": twin_sum})
        if golden.size != out.size or not np.array_equal(golden, out.reshape(-1)):
            diff = "size" if golden.size != out.size else f"{int((golden != out.reshape(-1)).sum())} values differ"
            report.golden_mismatches.append(f"out_layer{i}.txt ({layer.name}): {diff}")
        else:
            report.golden_layers_equal += 1


def _check_random(report: VerifyReport, net: IntegerNetwork, session: ort.InferenceSession, n_random: int,
                  seed: int) -> None:  # fmt: skip
    """The twin against the integer reference, layer by layer, on ``n_random`` random integer inputs."""
    rng = np.random.default_rng(seed)
    lo, hi = grid(net.input_bits, net.input_signed)
    xr = rng.integers(lo, hi + 1, (n_random, *net.input_shape_nhwc[1:]))
    ref = run_layers(net, xr)
    outs = run_twin(session, xr)
    report.random_inputs = n_random
    for layer, out in zip(net.layers, outs):
        if not np.array_equal(ref[layer.output], out):
            report.random_mismatches.append(layer.name)
    report.random_equal = not report.random_mismatches


def fakequant_agreement(net: IntegerNetwork, session: ort.InferenceSession) -> dict[str, float]:
    """Integer logits (via the twin, times each class's LSB) against the artifact's fake-quant logits."""
    logits = run_twin(session, net.quantize_input(net.ref_inputs))[-1] * net.logit_scale
    ref = np.asarray(net.ref_logits, np.float64)
    err = np.abs(logits - ref)
    return {
        "samples": int(len(ref)),
        "max_abs_error": float(err.max()),
        "max_abs_error_rel": float(err.max() / max(np.abs(ref).max(), 1e-12)),
        "argmax_agreement": float((logits.argmax(1) == ref.argmax(1)).mean()),
    }
