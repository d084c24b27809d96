"""One run of the pipeline, stage by stage. Every stage skips work whose valid outputs already exist."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from fb_schema import LatencyTable, NetConfig
from fb_schema.topologies import resolve_topology
from fbpipe.config import PipelineConfig
from fbpipe.records import Records

# The stages that make candidates (a config's provenance names its method in fb_schema's words: "bb-orig", "fb", ...)
METHODS = ("bb", "latency-bb", "homogeneous", "free-bits", "knapsack")


@dataclass(frozen=True)
class Candidate:
    """A configuration on offer for selection: the stage and settings that made it, its file, the checkpoint its
    weights come from.

    What a candidate is lives in its fields; ``id`` only names its files, records and report rows.
    """

    id: str
    path: Path
    checkpoint: str
    method: str  # one of METHODS
    key: str | None = None  # the record of the work that wrote it (its digest is what dependents depend on)
    target: str | None = None  # latency-aware, free-bits and knapsack configs belong to one target
    parent: str | None = None  # free bits: the id of the config it started from
    variant: str | None = None  # Bayesian Bits: "orig" or "locked"
    mu: float | None = None  # Bayesian Bits: the regularizer strength
    bits: int | None = None  # homogeneous: the precision of every searchable pair
    budget: float | None = None  # knapsack: the latency budget, a fraction of 8b/8b's

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"candidate {self.id}: method: expected one of {', '.join(METHODS)}, got {self.method!r}")

    @property
    def is_baseline(self) -> bool:
        """The 8b/8b configuration: the reference of every selection, and nothing is more precise."""
        return self.method == "homogeneous" and self.bits == 8

    def load(self, allowed) -> NetConfig:
        return NetConfig.load(self.path, allowed)


def homogeneous_candidate(candidates, bits: int) -> Candidate | None:
    """The homogeneous candidate at ``bits`` (8: the baseline), or None."""
    return next((c for c in candidates if c.method == "homogeneous" and c.bits == bits), None)


def network_of(cfg: PipelineConfig, data=None):
    """The config's network (built-in or topology file) with its input range: the config's ``input_range``,
    else (for a user FILE.npz) the data's, else the network's own; checked against the data."""
    import dataclasses

    import fb_search

    topology = resolve_topology(cfg.network, **cfg.network_params)
    rng = tuple(cfg.input_range) or (fb_search.data_range(data) if cfg.data.endswith(".npz") and data else ())
    if rng and tuple(rng) != topology.input_range:
        topology = dataclasses.replace(topology, input_range=tuple(float(v) for v in rng))
    if data is not None:
        fb_search.check_data(topology, data)
    return topology


@dataclass
class Run:
    cfg: PipelineConfig
    out: Path
    data: Any = None
    timings: dict[str, float] = field(default_factory=dict)
    progress: bool = True

    def __post_init__(self) -> None:
        self.topology = network_of(self.cfg, self.data)
        for sub in ("configs", "tables", "checkpoints", "finetune", "deploy"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)
        self.records = Records(self.out, click.echo)
        self.cached = self.records.cached
        self.upstream = self.records.upstream
        self.rel = self.records.rel
        self.path = self.records.resolve
        self._scores: dict[tuple[str, str], float] = {}

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def stage(self, index: int, total: int, title: str):
        run = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()
                click.secho(f"[{index}/{total}] {title}", bold=True)

            def __exit__(self, exc_type, *exc):
                seconds = time.perf_counter() - self.t0
                if exc_type is not None:  # the error itself is reported by the caller
                    click.echo(f"      failed after {seconds:.1f} s", err=True)
                    return
                run.timings[title] = seconds
                click.echo(f"      done in {seconds:.1f} s")

        return _Stage()

    def evaluate(self, net: NetConfig, checkpoint: str, data) -> float:
        """``fb_search.evaluate`` of ``net`` with ``checkpoint``'s weights, once per (network, checkpoint) in this
        process: free bits and the knapsack often reach one config on several targets, and evaluation is
        deterministic."""
        key = (net.sha256(), str(checkpoint))
        if key not in self._scores:
            import fb_search

            self._scores[key] = fb_search.evaluate(net, checkpoint, data)
        return self._scores[key]

    def table_path(self, target: str) -> Path:
        return self.out / "tables" / f"{self.cfg.target_slug(target)}.json"

    def tables(self) -> dict[str, LatencyTable]:
        return {t: LatencyTable.load(self.table_path(t)) for t in self.cfg.targets}


def with_accuracy(net: NetConfig, accuracy: float, stage: str, **extra: Any) -> NetConfig:
    metrics = {**net.metrics, "val_accuracy": float(accuracy), "accuracy_stage": stage, **extra}
    return NetConfig(net.network, net.layer_types, net.layers, net.provenance, metrics)
