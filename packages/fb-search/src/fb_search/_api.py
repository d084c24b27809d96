"""The pipeline API: float training, the Bayesian Bits search (one NetConfig per mu), evaluation of any
NetConfig, and TQT fine-tuning that writes the QuantizedNetwork artifact.

Paper: Rutishauser, Conti, Benini, "Free Bits", arXiv 2307.02894 (Bayesian Bits: van Baalen et al., arXiv
2005.07093; TQT: Jain et al., arXiv 1903.08066).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flax import nnx

from fb_schema import LatencyTable, NetConfig
from fb_schema.topologies import Topology, get_topology, resolve_topology, topology_from_json, topology_to_json
from fb_search._checkpoint import load_checkpoint, load_into, save_checkpoint
from fb_search._data import Dataset
from fb_search._export import export_quantized_network
from fb_search._float64 import check_dtype, data_in, model_in
from fb_search._latency_objective import latency_terms
from fb_search._model import VARIANTS, BBOptions, QNet, check_config, to_netconfig
from fb_search._npz_data import check_data
from fb_search._ops import COMPUTE_DTYPES
from fb_search._sensitivity import BITS_PHI, SENSITIVITY_IMAGES, layer_sensitivity  # noqa: F401 (API)
from fb_search._sweep import resolve_stacked, train_stacked
from fb_search._train import calibrate, reestimate_bn, train, val_accuracy
from fb_search.recipes import get_recipe

BN_IMAGES = 2048  # BN re-estimation: the whole digits training set; a 2k-image sample elsewhere


def _topology(topology: Topology | str, data: Dataset | None = None) -> Topology:
    if isinstance(topology, Topology):
        return topology
    params = {"resolution": data.input_shape[0]} if data is not None and topology == "digitsnet" else {}
    return resolve_topology(str(topology), **params)


def _resume(recipe, ckpt_dir: Path) -> dict[str, Any]:
    """Step checkpoints (exact resume) where the recipe asks for them (paper-scale runs; not digits)."""
    every = getattr(recipe, "CKPT_EVERY", 0)
    return {"ckpt_dir": ckpt_dir, "ckpt_every": every} if every else {}


def _kernels(recipe) -> dict[str, Any]:
    """The recipe's training kernels: ``FUSED_KERNELS`` (off where a recipe says nothing) and ``COMPUTE_DTYPE``
    (``float32``, or ``bfloat16`` conv operands on accelerators); a bad value is a one-line error naming both."""
    where = f"recipe {getattr(recipe, '__file__', None) or recipe.__name__}"
    fused = getattr(recipe, "FUSED_KERNELS", False)
    if not isinstance(fused, bool):
        raise ValueError(f"{where}: FUSED_KERNELS: expected True or False, got {fused!r}")
    dtype = getattr(recipe, "COMPUTE_DTYPE", "float32")
    if dtype not in COMPUTE_DTYPES:
        raise ValueError(f"{where}: COMPUTE_DTYPE: expected one of {', '.join(COMPUTE_DTYPES)}, got {dtype!r}")
    return {"fused_kernels": fused, "compute_dtype": dtype}


def _meta(topology: Topology, stage: str, **extra: Any) -> dict[str, Any]:
    meta = {"stage": stage, "network": topology.name, "topology_params": dict(topology.params)}
    return {**meta, "topology": topology_to_json(topology), **extra}


def _check_data(topology: Topology, data: Dataset) -> None:
    check_data(topology, data)


def train_float(
    topology: Topology | str,
    data: Dataset,
    steps: int | None,
    seed: int,
    ckpt_dir: str | os.PathLike,
    recipe: str = "digits",
) -> str:
    """Train the float network, calibrate activation thresholds, save ``<ckpt_dir>/float-s<seed>``.

    Returns:
      the checkpoint path (its ``meta.json`` holds the validation accuracy).
    """
    topology = _topology(topology, data)
    _check_data(topology, data)
    r = get_recipe(recipe)
    steps = r.FLOAT_STEPS if steps is None else steps
    model = QNet(topology, "float", **_kernels(r), rngs=nnx.Rngs(seed))
    Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    last = train(model, data, r.FLOAT, steps, seed, log_path=Path(ckpt_dir) / "metrics.jsonl", desc="float",
                 **_resume(r, Path(ckpt_dir) / f"float-s{seed}-steps"))  # fmt: skip
    calibrate(model, data.train_subset(r.CALIBRATION_IMAGES)[0])
    acc, wrong = val_accuracy(model, data)
    meta = _meta(topology, "float", seed=seed, steps=steps, val_accuracy=acc, val_errors=wrong)
    meta["train_loss"] = last.get("loss")  # of the last step: every process of a multi-host run has the same
    meta["seconds"] = round(time.time() - t0, 1)
    return save_checkpoint(model, Path(ckpt_dir) / f"float-s{seed}", meta)


def _load(checkpoint: str | os.PathLike, model: QNet) -> dict:
    state, meta = load_checkpoint(checkpoint)
    load_into(model, state)
    return meta


def topology_of(checkpoint: str | os.PathLike, config: NetConfig | None = None) -> Topology:
    """The topology a checkpoint was trained with (stored in its ``meta.json``; older ones name a built-in)."""
    meta = read_meta(checkpoint)
    if "topology" in meta:
        topology = topology_from_json(meta["topology"], f"{checkpoint}/meta.json: topology")
    else:
        topology = get_topology(meta["network"], **meta.get("topology_params", {}))
    if config is not None:
        check_config(config, topology)
    return topology


_topology_of = topology_of


def read_meta(checkpoint: str | os.PathLike) -> dict:
    """A checkpoint's ``meta.json`` (without restoring its state)."""
    path = Path(checkpoint).absolute() / "meta.json"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: not a checkpoint directory (expected state/ and meta.json)")
    return json.loads(path.read_text())


@dataclass(frozen=True)
class SearchRun:
    """One Bayesian Bits run of :func:`search_runs`: variant, mu, output directory, objective and latency table
    (see :func:`search`)."""

    variant: str = "orig"
    mu: float = 0.0
    out_dir: str | os.PathLike = "runs/search"
    objective: str = "bops"
    table: LatencyTable | None = None

    def name(self, seed: int) -> str:
        return f"{'bb' if self.objective == 'bops' else 'lat'}-{self.variant}-mu{self.mu:g}-s{seed}"


def _search_model(topology: Topology, r, run: SearchRun, seed: int, float_ckpt) -> QNet:
    """The BB model of ``run``, the float checkpoint loaded; its output directories created."""
    if run.variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {run.variant!r}")
    opts = BBOptions(run.variant, r.BB.gate_init, r.BB.temperature, r.BB.per_sample, r.BB.quantlab_mask)
    model = QNet(topology, "bb", bb=opts, **_kernels(r), rngs=nnx.Rngs(seed))
    if run.objective != "bops":
        if run.table is None:
            raise ValueError(f"objective {run.objective!r}: a latency table is required")
        model.use_latency_objective(run.objective, latency_terms(topology, run.table))
    _load(float_ckpt, model)
    (Path(run.out_dir) / "checkpoints").mkdir(parents=True, exist_ok=True)
    return model


def _drop_objective(model: QNet) -> None:
    """Remove the latency objective's state, which only training reads: the searched network then has the
    structure of a BOP search's, and its evaluation and BN re-estimation reuse those compiled programs."""
    for name in ("latency_matrix", "latency_layers", "objective"):
        if hasattr(model, name):
            delattr(model, name)


def _finish(model: QNet, topology: Topology, data: Dataset, run: SearchRun, where: dict, t0: float,
            sensitivity: bool) -> NetConfig:  # fmt: skip
    """Evaluate a searched model (BN re-estimated), save its checkpoint and NetConfig; ``where``: seed,
    float_ckpt, steps, recipe. ``t0``: when its search started (shared training: its share of the time)."""
    out_dir, name = Path(run.out_dir), run.name(where["seed"])
    latency = run.objective != "bops"
    expected_lat = float(model.expected_latency()) if latency else None
    _drop_objective(model)
    reestimate_bn(model, data.train_subset(BN_IMAGES)[0])  # the running statistics saw stochastic gates
    acc, wrong = val_accuracy(model, data)
    precisions = model.precisions()
    meta = _meta(topology, "bb", variant=run.variant, mu=run.mu)
    ckpt = save_checkpoint(model, out_dir / "checkpoints" / name, meta)
    metrics = {
        "val_accuracy": acc,
        "val_errors": wrong,
        "accuracy_stage": "bb-eval",
        "expected_bops": int(model.expected_bops()),
        "expected_bits": float(model.expected_bits()),
        "search_seconds": round(time.time() - t0, 1),
    }
    if latency:
        metrics["expected_latency"] = expected_lat
    if sensitivity:
        metrics["sensitivity"] = layer_sensitivity(model, data)
    method = f"bb-{run.variant}" if not latency else "latency-bb"
    provenance = {"method": method, "parent": None, "mu": float(run.mu), "seed": where["seed"]}
    provenance["table_sha256"] = run.table.sha256() if latency else None
    if latency:
        provenance |= {"objective": run.objective, "variant": run.variant, "target": run.table.target.name}
    provenance |= {"checkpoint": ckpt, "float_checkpoint": str(where["float_ckpt"])}
    provenance |= {"steps": where["steps"], "recipe": where["recipe"]}
    config = to_netconfig(topology, precisions, provenance, metrics)
    config = config.with_metrics(bops=config.bops())
    config.save(out_dir / "configs" / f"{name}.json")
    return config


def search(
    topology: Topology | str,
    data: Dataset,
    float_ckpt: str | os.PathLike,
    variant: str = "orig",
    mu: float = 0.0,
    steps: int | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike = "runs/search",
    recipe: str = "digits",
    sensitivity: bool = True,
    objective: str = "bops",
    table: LatencyTable | None = None,
) -> NetConfig:
    """One Bayesian Bits run at regularizer strength ``mu``; writes ``configs/<name>.json`` and a checkpoint.

    ``objective="bops"`` is the paper's BOP-weighted gate regularizer; ``"latency"`` replaces it by the expected
    network latency under ``table`` (normalized by the 8b/8b latency), ``"both"`` adds the two.

    Returns:
      the NetConfig (precisions read off the deterministic gates) with metrics ``val_accuracy`` (stage
      ``bb-eval``), ``bops`` (of the config), ``expected_bops``, ``expected_bits`` and per-layer
      ``sensitivity`` (validation cross-entropy increase when that layer alone runs at a pair).
    """
    run = SearchRun(variant, mu, out_dir, objective, table)
    return search_runs(topology, data, float_ckpt, [run], steps, seed, recipe, "off", sensitivity)[0]


def search_runs(
    topology: Topology | str,
    data: Dataset,
    float_ckpt: str | os.PathLike,
    runs: list[SearchRun],
    steps: int | None = None,
    seed: int = 0,
    recipe: str = "digits",
    stacked: str = "auto",
    sensitivity: bool = True,
    dtype: str = "float32",
) -> list[NetConfig]:
    """Several :func:`search` runs (one NetConfig each, in order). Runs of one variant and objective share one
    compiled train step (mu and the latency table are traced inputs); with ``stacked="vmap"`` (``auto``: on a
    GPU/TPU, and never with step checkpoints) they also train together, one step for all of them at a time.
    ``dtype="float64"`` (JAX's 64-bit mode on) searches in float64: a reference run, see ``fb_search._float64``."""
    check_dtype(dtype)
    topology = _topology(topology, data)
    _check_data(topology, data)
    data = data_in(data, dtype)
    r = get_recipe(recipe)
    steps = r.SEARCH_STEPS if steps is None else steps
    where = {"seed": seed, "float_ckpt": float_ckpt, "steps": steps, "recipe": recipe}
    how = "off" if stacked == "auto" and getattr(r, "CKPT_EVERY", 0) else resolve_stacked(stacked)
    groups: dict[tuple, list[int]] = {}
    for i, run in enumerate(runs):
        groups.setdefault((run.variant, run.objective) if how != "off" else (i,), []).append(i)
    out: list = [None] * len(runs)
    for members in groups.values():
        group = [runs[i] for i in members]
        models = [model_in(_search_model(topology, r, run, seed, float_ckpt), dtype) for run in group]
        logs = [(run.mu, run.name(seed), Path(run.out_dir) / "checkpoints" / "metrics.jsonl") for run in group]
        t0 = time.time()
        if how == "off":
            (mu, name, log), run = logs[0], group[0]
            ckpt = _resume(r, Path(run.out_dir) / "checkpoints" / f"{name}-steps")
            train(models[0], data, r.SEARCH, steps, seed, mu=mu, search=True, log_path=log, desc=name, **ckpt)
        else:
            desc = f"{len(group)} runs {group[0].variant}"
            train_stacked(models, data, r.SEARCH, steps, seed, tuple(logs), desc)
        share = (time.time() - t0) * (1 - 1 / len(group))  # each stacked run is charged 1/n of the training
        for i, model, run in zip(members, models, group):
            out[i] = _finish(model, topology, data, run, where, t0 + share, sensitivity)
    return out


def sweep(
    topology: Topology | str,
    data: Dataset,
    float_ckpt: str | os.PathLike,
    variant: str,
    mus: tuple[float, ...] | None = None,
    steps: int | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike = "runs/search",
    recipe: str = "digits",
    objective: str = "bops",
    table: LatencyTable | None = None,
    stacked: str = "auto",
    dtype: str = "float32",
) -> list[NetConfig]:
    """A mu sweep (one NetConfig per mu, one compilation; ``stacked`` and ``dtype``: see :func:`search_runs`)."""
    mus = get_recipe(recipe).MU_GRID if mus is None else mus
    runs = [SearchRun(variant, mu, out_dir, objective, table) for mu in mus]
    return search_runs(topology, data, float_ckpt, runs, steps, seed, recipe, stacked, dtype=dtype)


def _float_model(topology: Topology, checkpoint: str | os.PathLike) -> QNet:
    """The float model of a checkpoint (its kernels, biases and BN statistics; no quantization)."""
    model = QNet(topology, "float", rngs=nnx.Rngs(0))
    _load(checkpoint, model)
    return model


def load_model(
    config: NetConfig, checkpoint: str | os.PathLike, mode: str = "tqt", seed: int = 0, **kernels: Any
) -> QNet:
    """A ``fixed`` or ``tqt`` model at ``config``'s precisions with ``checkpoint``'s weights (``kernels``:
    ``fused_kernels``/``compute_dtype`` of :class:`QNet`)."""
    topology = _topology_of(checkpoint, config)
    model = QNet(topology, mode, config, rngs=nnx.Rngs(seed), **kernels)
    _load(checkpoint, model)
    return model


def evaluate(config: NetConfig, checkpoint: str | os.PathLike, data: Dataset) -> float:
    """Validation accuracy of ``checkpoint``'s weights at ``config``'s precisions, BN re-estimated first."""
    model = load_model(config, checkpoint, "fixed")
    reestimate_bn(model, data.train_subset(BN_IMAGES)[0])
    return val_accuracy(model, data)[0]


def finetune(
    config: NetConfig,
    checkpoint: str | os.PathLike,
    data: Dataset,
    steps: int | None = None,
    seed: int = 0,
    out_dir: str | os.PathLike = "runs/finetune",
    recipe: str = "digits",
    ref_images: int = 4,
) -> tuple[float, str]:
    """TQT fine-tuning of ``config`` from a float or searched checkpoint; writes the QuantizedNetwork.

    BN statistics are re-estimated under the config's quantization first. Writes ``<out_dir>/<name>/
    network.json`` (+ ``.npz``), the config with its TQT accuracy (``config.json``) and a checkpoint.

    Returns:
      (validation accuracy, path of the QuantizedNetwork JSON).
    """
    r = get_recipe(recipe)
    steps = r.TQT_STEPS if steps is None else steps
    model = load_model(config, checkpoint, "tqt", seed, **_kernels(r))
    topology = _topology_of(checkpoint)
    reestimate_bn(model, data.train_subset(BN_IMAGES)[0])
    name = f"tqt-{config.sha256()[:12]}-s{seed}"
    out = Path(out_dir) / name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    train(model, data, r.TQT, steps, seed, log_path=out / "metrics.jsonl", desc=name, **_resume(r, out / "steps"))
    acc, wrong = val_accuracy(model, data)
    ckpt = save_checkpoint(model, out / "checkpoint", _meta(topology, "tqt", config_sha256=config.sha256()))
    path = export_quantized_network(model, topology, config, data.val_subset(ref_images)[0], out / "network.json")
    tuned = config.with_precisions({}, checkpoint=ckpt).with_metrics(
        val_accuracy=acc, val_errors=wrong, accuracy_stage="tqt",
        finetune_seconds=round(time.time() - t0, 1),
    )  # fmt: skip
    tuned.save(out / "config.json")
    return acc, str(path)


def homogeneous(topology: Topology | str, b_in: int, b_wt: int, data: Dataset | None = None) -> NetConfig:
    """A homogeneous NetConfig (fixed inputs and the first layer at 8 bits)."""
    return NetConfig.homogeneous(_topology(topology, data), b_in, b_wt)
