"""One run of the pipeline, stage by stage. Every stage skips work whose valid outputs already exist."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

from fb_schema import LatencyTable, NetConfig, SchemaError
from fb_schema.topologies import resolve_topology
from fbpipe.config import PipelineConfig


@dataclass
class Candidate:
    """A configuration on offer for selection: its file, the checkpoint its weights come from, its parent."""

    id: str
    path: Path
    checkpoint: str
    parent: str | None = None
    target: str | None = None  # FB children belong to one target

    def load(self, allowed) -> NetConfig:
        return NetConfig.load(self.path, allowed)


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

    def __post_init__(self) -> None:
        self.topology = network_of(self.cfg, self.data)
        for sub in ("configs", "tables", "checkpoints", "finetune", "deploy"):
            (self.out / sub).mkdir(parents=True, exist_ok=True)

    # -- bookkeeping --------------------------------------------------------------------------------------------
    def stage(self, index: int, total: int, title: str):
        run = self

        class _Stage:
            def __enter__(self):
                self.t0 = time.perf_counter()
                click.secho(f"[{index}/{total}] {title}", bold=True)

            def __exit__(self, *exc):
                run.timings[title] = time.perf_counter() - self.t0
                click.echo(f"      done in {run.timings[title]:.1f} s")

        return _Stage()

    def load_config(self, path: Path) -> NetConfig | None:
        """A finished stage output, or None if absent or invalid (then the stage runs again)."""
        if not path.exists():
            return None
        try:
            return NetConfig.load(path, self.cfg.allowed_bits)
        except SchemaError as exc:
            click.echo(f"      re-running: {exc}")
            return None

    def table_path(self, target: str) -> Path:
        return self.out / "tables" / f"{self.cfg.target_slug(target)}.json"

    def tables(self) -> dict[str, LatencyTable]:
        return {t: LatencyTable.load(self.table_path(t)) for t in self.cfg.targets}


def with_accuracy(net: NetConfig, accuracy: float, stage: str, **extra: Any) -> NetConfig:
    metrics = {**net.metrics, "val_accuracy": float(accuracy), "accuracy_stage": stage, **extra}
    return NetConfig(net.network, net.layer_types, net.layers, net.provenance, metrics)
