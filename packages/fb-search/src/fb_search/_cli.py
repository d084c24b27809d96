"""``fb-search``: train-float | search | finetune | eval | layer-types | import-onnx | predict | export-onnx."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path

import click

from fb_schema import LatencyTable, MissingLatencyError, NetConfig, SchemaError
from fb_schema.topologies import is_topology_path, resolve_topology
from fb_search import _api
from fb_search._checkpoint import load_checkpoint
from fb_search._cli_errors import Group
from fb_search._data import get_data
from fb_search._distributed import maybe_initialize
from fb_search._latency_objective import OBJECTIVES
from fb_search._npz_data import check_data, data_range, load_npz_data
from fb_search.recipes import get_recipe


def _errors(fn):
    """Turn expected failures into one-line CLI errors (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyError as exc:
            raise click.ClickException(str(exc.args[0])) from None
        except (ValueError, SchemaError, FileNotFoundError, MissingLatencyError) as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper


def _network(name: str, width: float | None, resolution: int | None):
    params = {k: v for k, v in (("width", width), ("resolution", resolution)) if v is not None}
    try:
        return resolve_topology(name, **params)
    except TypeError:
        raise click.UsageError(f"--network {name}: does not take {', '.join(params)}") from None


def _load_config(path: str) -> NetConfig:
    return NetConfig.load(path)


network_opt = click.option(
    "--network", default="digitsnet", show_default=True, help="a built-in network or a topology file (.json)"
)
data_opt = click.option(
    "--data", "data_name", default="digits", show_default=True, help="digits|cifar10|imagenet2012 or FILE.npz"
)
layout_opt = click.option(
    "--layout",
    type=click.Choice(["nhwc", "nchw"]),
    default="nhwc",
    show_default=True,
    help="the layout of --data FILE.npz",
)
data_dir_opt = click.option("--data-dir", default=None, help="prepared tfds data (default $TFDS_DATA_DIR)")
dry_opt = click.option("--dry-run", is_flag=True, help="check the data path and print the plan; train nothing")


def _data(name: str, data_dir: str | None, topology, layout: str = "nhwc", check: bool = True):
    """A named data set or a user ``.npz``, checked against the network (shape, classes, value range)."""
    if name.endswith(".npz"):
        data = load_npz_data(name, layout)
    else:
        data = get_data(name, data_dir=data_dir, resolution=topology.input_shape[0])
    if check:
        check_data(topology, data)
    return data


def _range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"expected LO,HI such as -1,1, got {text!r}", param_hint="--input-range") from None
    if not (lo < hi and hi > 0):
        raise click.BadParameter(f"expected lo < hi and hi > 0, got {text!r}", param_hint="--input-range")
    return lo, hi


range_opt = click.option(
    "--input-range", "input_range", default=None, metavar="LO,HI",
    help="the input quantizer's real range (signed symmetric if LO < 0); default: the network's, or the data's",
)  # fmt: skip


def _plan(stage: str, topology, data, recipe: str, spec, steps: int, extra: str = "") -> None:
    import jax

    x, y = data.batch(0, spec.batch_size, 0)
    click.echo(f"{stage}: {topology.name} {dict(topology.params)} ({len(topology.layers)} layers), data {data.name}")
    click.echo(
        f"  first batch {tuple(x.shape)} in [{float(x.min()):.3f}, {float(x.max()):.3f}], labels {y[:8].tolist()}"
    )
    click.echo(f"  recipe {recipe}: {steps} steps, {spec}{extra}")
    click.echo(
        f"  devices: {jax.device_count()} ({jax.process_count()} process(es)), batch per device "
        f"{spec.batch_size // max(jax.device_count(), 1)}"
    )


seed_opt = click.option("--seed", default=0, show_default=True, type=int)
steps_opt = click.option("--steps", default=None, type=click.IntRange(1), help="default: the recipe's")
recipe_opt = click.option("--recipe", default="digits", show_default=True)


def _no_progress(f):
    """--no-progress: neither a bar nor progress lines (sets FB_NO_PROGRESS, which the training loop reads)."""

    def callback(ctx, param, value):
        if value:
            os.environ["FB_NO_PROGRESS"] = "1"

    return click.option("--no-progress", is_flag=True, expose_value=False, callback=callback,
                        help="no progress bar (nor progress lines when output is not a terminal)")(f)  # fmt: skip


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.version_option(package_name="fb-search", prog_name="fb-search")
def main() -> None:
    """Bayesian Bits search and TQT fine-tuning (Free Bits, arXiv 2307.02894)."""
    try:
        maybe_initialize()  # multi-host: before any JAX work (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, ...)
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(f"multi-host start: {str(exc).splitlines()[0]}") from None


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
@click.option("--width", type=float, default=None)
@click.option("--resolution", type=int, default=None)
@click.option("--classes", "num_classes", type=int, default=None, help="default: the data set's")
@data_opt
@layout_opt
@range_opt
@data_dir_opt
@steps_opt
@seed_opt
@recipe_opt
@dry_opt
@click.option("--out", "out_dir", default="runs/digits", show_default=True, type=click.Path(file_okay=False))
@click.option("--force", is_flag=True, help="overwrite an existing checkpoint of this seed")
@_no_progress
@_errors
def train_float(network, width, resolution, num_classes, data_name, layout, input_range, data_dir, steps, seed,
                recipe, out_dir, dry_run, force):  # fmt: skip
    """Train the float network; writes <out>/checkpoints/float-s<seed> and metrics.jsonl."""
    target = Path(out_dir) / "checkpoints" / f"float-s{seed}"
    if target.exists() and not force and not dry_run:
        raise click.ClickException(f"{target}: a checkpoint exists already (use --force to overwrite it)")
    topo = _network(network, width, resolution)
    data = _data(data_name, data_dir, topo, layout, check=False)
    classes = num_classes or data.num_classes
    if topo.num_classes != classes and (num_classes or not is_topology_path(network)):
        topo = resolve_topology(network, **{**topo.params, "num_classes": classes})
    rng = _range(input_range) or (data_range(data) if data_name.endswith(".npz") else None)
    if rng is not None and rng != topo.input_range:
        topo = dataclasses.replace(topo, input_range=rng)
        click.echo(f"input range [{rng[0]:g}, {rng[1]:g}] ({'signed' if rng[0] < 0 else 'unsigned'} 8-bit input)")
    check_data(topo, data)
    if dry_run:
        r = get_recipe(recipe)
        _plan("train-float", topo, data, recipe, r.FLOAT, steps or r.FLOAT_STEPS)
        return
    ckpt = _api.train_float(topo, data, steps, seed, Path(out_dir) / "checkpoints", recipe)
    _, meta = load_checkpoint(ckpt)
    loss = f"train loss {meta['train_loss']:.6f}, " if meta.get("train_loss") is not None else ""
    click.echo(
        f"float {topo.name}: {loss}val accuracy {meta['val_accuracy']:.4f} ({meta['val_errors']} errors) -> {ckpt}"
    )


@main.command()
@data_opt
@layout_opt
@data_dir_opt
@dry_opt
@click.option("--float-ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--variant", type=click.Choice(["orig", "locked"]), default="orig", show_default=True)
@click.option("--mu", "mus", type=float, multiple=True, help="repeat for a sweep; default: the recipe's grid")
@steps_opt
@seed_opt
@recipe_opt
@click.option("--out", "out_dir", default="runs/digits", show_default=True, type=click.Path(file_okay=False))
@click.option("--objective", type=click.Choice(OBJECTIVES), default="bops", show_default=True,
              help="bops (the paper), expected latency from --table, or both")  # fmt: skip
@click.option("--table", "table_path", type=click.Path(exists=True, dir_okay=False), default=None,
              help="latency table (fb-profile) for --objective latency|both")  # fmt: skip
@_no_progress
@_errors
def search(data_name, layout, data_dir, dry_run, float_ckpt, variant, mus, steps, seed, recipe, out_dir, objective,
           table_path) -> None:  # fmt: skip
    """Bayesian Bits search: one NetConfig per mu in <out>/configs/."""
    if objective != "bops" and table_path is None:
        raise click.UsageError(f"--objective {objective} needs --table (a latency table from fb-profile)")
    table = LatencyTable.load(table_path) if table_path else None
    topo = _api.topology_of(float_ckpt)
    data = _data(data_name, data_dir, topo, layout)
    if dry_run:
        r = get_recipe(recipe)
        grid = list(mus) or list(r.MU_GRID)
        _plan("search", topo, data, recipe, r.SEARCH, steps or r.SEARCH_STEPS, f", {variant}, mu {grid}, {r.BB}")
        return
    configs = _api.sweep(topo, data, float_ckpt, variant, tuple(mus) or None, steps, seed, out_dir, recipe, objective,
                         table)  # fmt: skip
    for cfg in configs:
        m = cfg.metrics
        bits = " ".join(f"{layer.b_in}/{layer.b_wt}" for layer in cfg.layers if layer.b_wt is not None)
        click.echo(f"mu={cfg.provenance['mu']:g} acc={m['val_accuracy']:.4f} bops={m['bops']} [{bits}]")


@main.command()
@data_opt
@layout_opt
@data_dir_opt
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@steps_opt
@seed_opt
@recipe_opt
@click.option("--out", "out_dir", default="runs/digits/quantized", show_default=True, type=click.Path(file_okay=False))
@_no_progress
@_errors
def finetune(data_name, layout, data_dir, config_path, ckpt, steps, seed, recipe, out_dir) -> None:
    """TQT fine-tuning of a NetConfig; writes the QuantizedNetwork artifact."""
    config = _load_config(config_path)
    data = _data(data_name, data_dir, _api._topology_of(ckpt, config), layout)
    acc, path = _api.finetune(config, ckpt, data, steps, seed, out_dir, recipe)
    click.echo(f"tqt: val accuracy {acc:.4f} -> {path}")


@main.command("eval")
@data_opt
@layout_opt
@data_dir_opt
@click.option("--config", "config_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@_errors
def eval_cmd(data_name, layout, data_dir, config_path, ckpt) -> None:
    """Accuracy of a checkpoint at a NetConfig's precisions (BN re-estimated)."""
    config = _load_config(config_path)
    acc = _api.evaluate(config, ckpt, _data(data_name, data_dir, _api._topology_of(ckpt, config), layout))
    click.echo(json.dumps({"config": config_path, "val_accuracy": acc}))


@main.command("export-onnx")
@click.option("--ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="fake-quant export at this config (default: float)")  # fmt: skip
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False))
@_errors
def export_onnx(ckpt: str, config_path: str | None, out_path: str) -> None:
    """Float (or fake-quant) ONNX of a checkpoint, depthwise as grouped convs (needs the [onnx] extra)."""
    from flax import nnx

    from fb_search._checkpoint import load_into
    from fb_search._model import QNet
    from fb_search._onnx import export_onnx as run_export

    config = _load_config(config_path) if config_path else None
    topo = _api._topology_of(ckpt, config)
    model = QNet(topo, "float" if config is None else "fixed", config, rngs=nnx.Rngs(0))
    state, _ = load_checkpoint(ckpt)
    load_into(model, state)
    click.echo(f"wrote {run_export(model, out_path)}")


@main.command("import-onnx")
@click.argument("model", type=click.Path(exists=True, dir_okay=False))
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False))
@range_opt
@click.option("--data", "data_name", default=None, help="FILE.npz: calibrate on it (and take its input range)")
@layout_opt
@click.option("--name", default=None, help="the network's name (default: the file's stem)")
@_errors
def import_onnx_cmd(model, out_dir, input_range, data_name, layout, name) -> None:
    """Import an ONNX float classifier: writes OUT/topology.json and the float checkpoint OUT/checkpoints/float."""
    from fb_search._import import import_onnx_model

    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"--out {out}: exists and is not empty")
    data = load_npz_data(data_name, layout) if data_name else None
    rng = _range(input_range) or (data_range(data) if data is not None else None)
    if rng is None:
        raise click.UsageError("give --input-range LO,HI or --data FILE.npz (the input quantizer's range)")
    topo, ckpt = import_onnx_model(model, out, rng, data, name)
    if data is not None:
        check_data(topo, data)
    for layer in topo.layers:
        extra = f" bias={str(layer.bias).lower()}" if layer.layer_type.configurable else ""
        click.echo(f"{layer.name}\t{layer.layer_type.key}\tact={layer.act}{extra}\tinputs={','.join(layer.inputs)}")
    click.echo(f"{topo.name}: {len(topo.layers)} layers, {len(topo.layer_types())} layer types, input "
               f"{topo.input_layout} range [{rng[0]:g}, {rng[1]:g}] -> {out / 'topology.json'}, {ckpt}")  # fmt: skip


@main.command()
@click.option("--ckpt", required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False), help="X.npy")
@click.option("--layout", type=click.Choice(["nhwc", "nchw"]), default=None, help="X's layout (default: the network's)")
@click.option("--config", "config_path", default=None, type=click.Path(exists=True, dir_okay=False),
              help="fake-quant prediction at this config (default: the checkpoint's own mode)")  # fmt: skip
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Y.npy: float32 logits")
@_errors
def predict(ckpt, input_path, layout, config_path, output) -> None:
    """Logits (N, classes) of a checkpoint on X.npy; a float checkpoint computes the float network exactly."""
    import numpy as np

    from fb_search._train import predict as run_predict

    config = _load_config(config_path) if config_path else None
    stage = _api.read_meta(ckpt).get("stage", "float")
    if config is None and stage == "tqt" and (Path(ckpt).parent / "config.json").is_file():
        config = _load_config(Path(ckpt).parent / "config.json")
    topo = _api._topology_of(ckpt, config)
    x = np.load(input_path)
    layout = layout or topo.input_layout
    want = (topo.input_shape[2], *topo.input_shape[:2]) if layout == "nchw" else tuple(topo.input_shape)
    if x.ndim != 4 or tuple(x.shape[1:]) != want:
        raise click.ClickException(
            f"{input_path}: expected shape (N, {', '.join(map(str, want))}) ({layout}), got {x.shape}"
        )
    x = x.transpose(0, 2, 3, 1) if layout == "nchw" else x
    if config is None:
        model = _api._float_model(topo, ckpt)
    else:
        model = _api.load_model(config, ckpt, "tqt" if stage == "tqt" else "fixed")
    logits = run_predict(model, np.ascontiguousarray(x, np.float32)).astype(np.float32)
    np.save(output, logits)
    click.echo(f"{len(logits)} x {logits.shape[1]} logits -> {output}")


@main.command()
@click.argument("name", type=click.Choice(["imagenet2012", "cifar10"]))
@click.option("--manual-dir", required=True, type=click.Path(exists=True, file_okay=False), help="the archives")
@click.option("--data-dir", default=None, help="output (default $TFDS_DATA_DIR or ~/tensorflow_datasets)")
@_errors
def prepare(name: str, manual_dir: str, data_dir: str | None) -> None:
    """Prepare ImageNet / CIFAR-10 array_record files from downloaded archives (no TensorFlow, no download)."""
    from fb_search._tfds import default_data_dir
    from fb_search._tfds import prepare as run_prepare

    click.echo(f"prepared {name} -> {run_prepare(name, manual_dir, data_dir or default_data_dir())}")


if __name__ == "__main__":
    main()
