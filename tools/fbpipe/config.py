"""Pipeline configs are Python files with a ``get_config()`` returning a dict (big_vision style)."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

TARGET_PREFIXES = ("pulp-model:", "table:")  # the built-in model, or a committed measured table


@dataclass(frozen=True)
class PipelineConfig:
    """Everything one run needs; every field has the meaning documented in ``configs/demo.py``."""

    name: str
    network: str = "digitsnet"  # a built-in network or a topology file (relative to the config)
    network_params: dict[str, Any] = field(default_factory=dict)
    data: str = "digits"  # digits | cifar10 | imagenet2012 | FILE.npz (relative to the config)
    data_layout: str = "nhwc"  # layout of a FILE.npz
    input_range: tuple[float, ...] = ()  # (lo, hi) of the input quantizer; () = the network's, or the data's
    recipe: str = "digits"  # fb-search recipe name, or a recipe FILE.py (relative to the config)
    seed: int = 0
    float_steps: int = 600
    search_steps: int = 300
    variants: tuple[str, ...] = ("orig", "locked")
    mus: tuple[float, ...] = (0.0, 0.01, 0.03, 0.1)
    targets: tuple[str, ...] = ("pulp-model:xpulpv2", "pulp-model:xpulpnn1", "pulp-model:xpulpnn2")
    allowed_bits: tuple[int, ...] = (2, 4, 8)
    margins_pp: tuple[float, ...] = (0.5, 1.5)
    latency_target_fraction: float = 0.8
    latency_variants: tuple[str, ...] = ("orig",)  # latency-aware search (objective = expected latency)
    latency_mus: tuple[float, ...] = ()  # () = no latency-aware search
    knapsack_budgets: tuple[float, ...] = (0.6, 0.7, 0.8, 0.9)  # fractions of the 8b/8b latency; () = none
    hypervolume_reference: tuple[float, float] = (1.25, 0.5)  # (latency / 8b/8b latency, accuracy)
    finetune_steps: int = 200
    reference_images: int = 8
    gvsoc: bool = False  # run every deployed network on GVSOC (needs the GVSOC kit's env.sh sourced)

    def target_slug(self, target: str) -> str:
        if target.startswith(
            "table:"
        ):  # table:tables/gvsoc/digitsnet_gvsoc-xpulpv2-kit-gcc12.json -> table-digitsnet_...
            return "table-" + Path(target[len("table:") :]).stem
        return target.replace(":", "-").replace("@", "-").replace("pulp-model-", "pulp-")


def load_config(path: str | Path) -> PipelineConfig:
    """Import ``path`` and build the PipelineConfig; unknown or ill-typed fields are one-line errors."""
    path = Path(path)
    if not path.is_file():
        raise click.ClickException(f"{path}: no such config file")
    raw = _run_config_file(path)
    known = PipelineConfig.__dataclass_fields__
    for key in raw:
        if key not in known:
            raise click.ClickException(f"{path}: {key}: unknown field (known: {', '.join(sorted(known))})")
    if "name" not in raw:
        raise click.ClickException(f"{path}: name: a required field is missing")
    for key, value in raw.items():
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise click.ClickException(f"{path}: {key}: expected True or False, got {value!r}")
        if isinstance(default, tuple):
            if not isinstance(value, (list, tuple)):
                raise click.ClickException(f"{path}: {key}: expected a list or tuple, got {value!r}")
            raw[key] = tuple(value)
        elif key == "network_params" and not isinstance(value, dict):
            raise click.ClickException(f"{path}: {key}: expected a dict of topology parameters, got {value!r}")
        elif isinstance(default, (int, float)) and not isinstance(value, (int, float)) and value is not None:
            raise click.ClickException(f"{path}: {key}: expected a number, got {value!r}")
    for key, suffixes in (("network", (".json",)), ("data", (".npz",)), ("recipe", (".py",))):
        value = raw.get(key)
        if isinstance(value, str) and value.endswith(suffixes) and not Path(value).is_absolute():
            raw[key] = str((path.parent / value).resolve())
            if not Path(raw[key]).is_file():
                raise click.ClickException(f"{path}: {key}: no such file {raw[key]}")
    if raw.get("data_layout", "nhwc") not in ("nhwc", "nchw"):
        raise click.ClickException(f"{path}: data_layout: expected 'nhwc' or 'nchw', got {raw['data_layout']!r}")
    rng = tuple(raw.get("input_range", ()))
    if rng and not (len(rng) == 2 and rng[0] < rng[1] and rng[1] > 0):
        raise click.ClickException(f"{path}: input_range: expected (lo, hi) with lo < hi and hi > 0, got {rng!r}")
    cfg = PipelineConfig(**raw)
    _check_network(path, cfg)
    for target in cfg.targets:
        if not target.startswith(TARGET_PREFIXES):
            raise click.ClickException(
                f"{path}: targets: expected 'pulp-model:<isa>' or 'table:<file>', got {target!r}"
            )
        if target.startswith("table:") and not Path(target[len("table:") :]).is_file():
            raise click.ClickException(f"{path}: targets: {target!r}: no such measured table")
    for variant in cfg.variants + cfg.latency_variants:
        if variant not in ("orig", "locked"):
            raise click.ClickException(f"{path}: variants: expected 'orig' or 'locked', got {variant!r}")
    return cfg


def _run_config_file(path: Path) -> dict[str, Any]:
    """Import the config file and call its ``get_config()``; any failure is one line naming the file."""
    spec = importlib.util.spec_from_file_location(f"fb_pipeline_config_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as exc:
        raise click.ClickException(f"{path}: line {exc.lineno}: {exc.msg}") from None
    except Exception as exc:  # noqa: BLE001 - a user's file may raise anything; report it in one line
        raise click.ClickException(f"{path}: importing it raised {type(exc).__name__}: {exc}") from None
    if not callable(getattr(module, "get_config", None)):
        raise click.ClickException(f"{path}: expected a function get_config() returning a dict")
    try:
        raw = module.get_config()
    except Exception as exc:  # noqa: BLE001
        raise click.ClickException(f"{path}: get_config() raised {type(exc).__name__}: {exc}") from None
    if not isinstance(raw, dict):
        raise click.ClickException(f"{path}: get_config() must return a dict, got {type(raw).__name__}")
    return dict(raw)


def _check_network(path: Path, cfg: PipelineConfig) -> None:
    """The network must be a built-in topology that takes the given parameters, or a valid topology file."""
    from fb_schema.topologies import resolve_topology

    try:
        resolve_topology(cfg.network, **cfg.network_params)
    except (ValueError, TypeError) as exc:
        raise click.ClickException(f"{path}: network: {exc}") from None
