"""Shared fixtures: the digits pipeline is trained once per test session (float, a mu sweep per variant, an
8b/8b fine-tune), and a numpy reference forward of QuantizedNetwork artifacts."""

import numpy as np
import pytest
from conftest import GOLDEN

import fb_search
from fb_schema import ADDER_BITS, QuantizedNetwork, grid, residual_add_step

MUS = (0.0, 0.01, 0.03, 0.1)


@pytest.fixture(scope="session")
def digits():
    return fb_search.load_digits_data()


@pytest.fixture(scope="session")
def untrained_ckpt(digits, tmp_path_factory) -> str:
    """A float digitsnet checkpoint after one step: for tests that need a checkpoint, not a trained network."""
    return fb_search.train_float("digitsnet", digits, 1, 0, tmp_path_factory.mktemp("untrained") / "checkpoints")


@pytest.fixture(scope="session")
def pipeline(digits, tmp_path_factory):
    """Float digitsnet, a 4-value mu sweep per variant and an 8b/8b fine-tune (recipe step counts)."""
    out = tmp_path_factory.mktemp("digits")
    ckpt = fb_search.train_float("digitsnet", digits, None, 0, out / "checkpoints")
    _, meta = fb_search.load_checkpoint(ckpt)
    print(f"\nfloat digitsnet: {meta['val_errors']} errors of 540 ({meta['val_accuracy']:.4f})")
    sweeps = {}
    for variant in ("orig", "locked"):
        sweeps[variant] = fb_search.sweep("digitsnet", digits, ckpt, variant, MUS, None, 0, out)
        for cfg in sweeps[variant]:
            bits = " ".join(f"{c.b_in}/{c.b_wt}" for c in cfg.layers if c.b_wt is not None)
            print(f"bb-{variant} mu={cfg.provenance['mu']:g}: {cfg.metrics['val_errors']} errors [{bits}]")
    c8 = fb_search.homogeneous("digitsnet", 8, 8)
    acc8, artifact = fb_search.finetune(c8, ckpt, digits, None, 0, out / "quantized")
    print(f"tqt 8b/8b: {round((1 - acc8) * 540)} errors of 540 ({acc8:.4f})")
    return {"out": out, "ckpt": ckpt, "meta": meta, "sweeps": sweeps, "acc8": acc8, "artifact": artifact}


def _quant(x, scale, bits, signed):
    lo, hi = grid(bits, signed)
    return np.clip(np.round(x / scale), lo, hi) * scale


def _conv(x, w, stride, pad, groups):
    t, l, b, r = pad
    x = np.pad(x, ((0, 0), (t, b), (l, r), (0, 0)))
    kh, kw, ci, co = w.shape
    oh, ow = (x.shape[1] - kh) // stride[0] + 1, (x.shape[2] - kw) // stride[1] + 1
    out = np.zeros((x.shape[0], oh, ow, co))
    per = co // groups
    for g in range(groups):
        xs, ws = x[..., g * ci : (g + 1) * ci], w[..., g * per : (g + 1) * per]
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, i : i + stride[0] * oh : stride[0], j : j + stride[1] * ow : stride[1], :]
                out[..., g * per : (g + 1) * per] += patch @ ws[i, j]
    return out


def reference_forward(json_path, inputs=None):
    """The artifact's fake-quant forward in float64 numpy (the conventions of fb_schema's QuantizedNetwork)."""
    qn = QuantizedNetwork.load(json_path)
    with np.load(qn.npz_path) as npz:
        arr = {k: npz[k].astype(np.float64) for k in npz.files}
    x = arr[qn.doc["reference"]["inputs"]] if inputs is None else inputs
    values = {qn.input["tensor"]: _quant(x, qn.input["scale"], 8, False)}
    for node in qn.nodes:
        lt = qn.layer_type(node)
        xs = [values[t] for t in node["inputs"]]
        if node["weight"] is not None:
            wq = node["w_quant"]
            w = _quant(arr[node["weight"]], arr[wq["scale"]], wq["bits"], True)
            if lt.op == "linear":
                y = xs[0].reshape(len(xs[0]), -1) @ w + arr[node["bias"]]
            else:
                y = _conv(xs[0], w, lt.stride, lt.padding, lt.groups)
                bn = {k: arr[node["bn"][k]] for k in ("gamma", "beta", "mean", "var")}
                y = (y - bn["mean"]) / np.sqrt(bn["var"] + node["bn"]["eps"]) * bn["gamma"] + bn["beta"]
        elif lt.op == "add":  # the deployed adder: each input on the common 8-bit step first
            specs = [(qn.tensors[t]["bits"], qn.tensors[t]["signed"], qn.tensors[t]["scale"]) for t in node["inputs"]]
            s_c = residual_add_step(specs)
            y = sum(np.clip(np.floor(v / s_c + 0.5), *grid(ADDER_BITS, sp[1])) * s_c for v, sp in zip(xs, specs))
        else:
            y = xs[0].mean(axis=(1, 2), keepdims=True)
        spec = qn.tensors[node["output"]]
        if spec["bits"] < 32:
            if not spec["signed"] and node["weight"] is not None:
                y = np.clip(y, 0, 6)  # ReLU6 producers are the unsigned conv outputs
            y = _quant(y, spec["scale"], spec["bits"], spec["signed"])
        values[node["output"]] = y
    return values[qn.nodes[-1]["output"]], arr[qn.doc["reference"]["logits"]]


@pytest.fixture(scope="session")
def golden():
    return GOLDEN


@pytest.fixture(scope="session")
def ref_forward():
    return reference_forward
