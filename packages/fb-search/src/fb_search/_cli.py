"""``fb-search``: train-float | search | finetune | eval | layer-types."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import click

from fb_schema import NetConfig, SchemaError
from fb_schema.topologies import get_topology
from fb_search import _api
from fb_search._checkpoint import load_checkpoint
from fb_search._data import get_data


def _errors(fn):
    """Turn expected failures into one-line CLI errors (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        except (ValueError, SchemaError, FileNotFoundError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _network(name: str, width: float | None, resolution: int | None):
    params = {k: v for k, v in (("width", width), ("resolution", resolution)) if v is not None}
    try:
        return get_topology(name, **params)
    except TypeError:
        raise click.UsageError(f"--network {name}: does not take {', '.join(params)}") from None


def _load_config(path: str) -> NetConfig:
    return NetConfig.load(path)


network_opt = click.option("--network", default="digitsnet", show_default=True, help="built-in topology")
data_opt = click.option("--data", "data_name", default="digits", show_default=True, help="data set")
seed_opt = click.option("--seed", default=0, show_default=True, type=int)
steps_opt = click.option("--steps", default=None, type=click.IntRange(1), help="default: the recipe's")
recipe_opt = click.option("--recipe", default="digits", show_default=True)


@click.group()
def main() -> None:
    """Bayesian Bits search and TQT fine-tuning (Free Bits, arXiv 2307.02894)."""


@main.command("layer-types")
@network_opt
@click.option("--width", type=float, default=None)
@click.option("--resolution", type=int, default=None)
@_errors
def layer_types(network: str, width: float | None, resolution: int | None) -> None:
    """Print each layer's name and layer-type key."""
    topo = _network(network, width, resolution)
    for layer in topo.layers:
        click.echo(f"{layer.name}\t{layer.layer_type.key}\tfixed_in={topo.b_in_fixed(layer.name)}")


@main.command("train-float")
@network_opt
@data_opt
@steps_opt
@seed_opt
@recipe_opt
@click.option("--out", "out_dir", default="runs/digits", show_default=True, type=click.Path(file_okay=False))
@_errors
def train_float(network: str, data_name: str, steps: int | None, seed: int, recipe: str, out_dir: str) -> None:
    """Train the float network; writes <out>/checkpoints/float-s<seed> and metrics.jsonl."""
    data = get_data(data_name)
    ckpt = _api.train_float(network, data, steps, seed, Path(out_dir) / "checkpoints", recipe)
    _, meta = load_checkpoint(ckpt)
    click.echo(f"float {network}: val accuracy {meta['val_accuracy']:.4f} ({meta['val_errors']} errors) -> {ckpt}")


@main.command()
@data_opt
@click.option("--float-ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--variant", type=click.Choice(["orig", "locked"]), default="orig", show_default=True)
@click.option("--mu", "mus", type=float, multiple=True, help="repeat for a sweep; default: the recipe's grid")
@steps_opt
@seed_opt
@recipe_opt
@click.option("--out", "out_dir", default="runs/digits", show_default=True, type=click.Path(file_okay=False))
@_errors
def search(data_name, float_ckpt, variant, mus, steps, seed, recipe, out_dir) -> None:
    """Bayesian Bits search: one NetConfig per mu in <out>/configs/."""
    data = get_data(data_name)
    _, meta = load_checkpoint(float_ckpt)
    topo = get_topology(meta["network"], **meta.get("topology_params", {}))
    for cfg in _api.sweep(topo, data, float_ckpt, variant, tuple(mus) or None, steps, seed, out_dir, recipe):
        m = cfg.metrics
        bits = " ".join(f"{layer.b_in}/{layer.b_wt}" for layer in cfg.layers if layer.b_wt is not None)
        click.echo(f"mu={cfg.provenance['mu']:g} acc={m['val_accuracy']:.4f} bops={m['bops']} [{bits}]")


@main.command()
@data_opt
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@steps_opt
@seed_opt
@recipe_opt
@click.option("--out", "out_dir", default="runs/digits/quantized", show_default=True, type=click.Path(file_okay=False))
@_errors
def finetune(data_name, config_path, ckpt, steps, seed, recipe, out_dir) -> None:
    """TQT fine-tuning of a NetConfig; writes the QuantizedNetwork artifact."""
    acc, path = _api.finetune(_load_config(config_path), ckpt, get_data(data_name), steps, seed, out_dir, recipe)
    click.echo(f"tqt: val accuracy {acc:.4f} -> {path}")


@main.command("eval")
@data_opt
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@_errors
def eval_cmd(data_name, config_path, ckpt) -> None:
    """Accuracy of a checkpoint at a NetConfig's precisions (BN re-estimated)."""
    acc = _api.evaluate(_load_config(config_path), ckpt, get_data(data_name))
    click.echo(json.dumps({"config": config_path, "val_accuracy": acc}))


if __name__ == "__main__":
    main()
