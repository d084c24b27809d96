"""Where a training step's time goes: a ``jax.profiler`` trace of a few steps, every XLA:CPU thunk attributed to
the source function it was traced from (the compiled HLO's stack frames), summed per category.

    .venv/bin/python benchmarks/step_profile.py --model mobilenetv1-0.25@128 --batch 32 [--mode float|bb]

Categories: pointwise / stem convs, depthwise taps, BatchNorm, ReLU6, quantizers, classifier + loss, optimizer,
layout copies (transposes XLA inserts around its conv kernels, no source line) and other; plus the host time
between thunks (dispatch, Python). Numbers are per step; the machine is shared, so read the shares, not the ms.
"""

from __future__ import annotations

import collections
import glob
import gzip
import json
import re
import sys
import tempfile
from pathlib import Path

import click
import jax
import numpy as np
from flax import nnx

from fb_search import OptSpec, QNet

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bb_overhead import step_and_inputs, timer  # noqa: E402

MODELS = {"mobilenetv1-0.25@128": (0.25, 128), "mobilenetv1-0.75@224": (0.75, 224)}
# (category, function names that put a frame in it), first match from the innermost frame outwards
CATEGORIES = (
    ("depthwise taps", ("depthwise_taps", "depthwise_conv", "_dw_", "_taps_padded", "_pad", "_patch")),
    ("BatchNorm", ("BatchNorm.__call__", "batch_norm", "_bn_fwd", "_bn_bwd", "_compute_stats", "_normalize")),
    ("ReLU6", ("relu6",)),
    ("quantizers", ("fq_ste", "fake_quant", "bb_quantize", "hc_sample", "BBQuant", "FixedQuant", "TQTQuant")),
    ("pointwise / stem convs", ("conv_nhwc", "pointwise")),
    ("classifier + loss", ("QLinear.core", "cross_entropy", "QPool.core")),
    ("optimizer", ("update_fn", "apply_updates", "tx.update")),
)


def _frames(hlo: str) -> dict[int, list[str]]:
    """Stack frame id -> function names, innermost first, from the HLO module's stack-frame tables."""
    sections = collections.defaultdict(dict)
    current = None
    for line in hlo.splitlines():
        if line in ("FileNames", "FunctionNames", "FileLocations", "StackFrames"):
            current = line
            continue
        m = re.match(r"^(\d+) (.*)$", line)
        if current and m:
            sections[current][int(m.group(1))] = m.group(2)
        elif not line.strip():
            current = None
    funcs = {k: v.strip('"') for k, v in sections["FunctionNames"].items()}
    locs = {k: int(re.search(r"function_name_id=(\d+)", v).group(1)) for k, v in sections["FileLocations"].items()}
    parents = {}
    for k, v in sections["StackFrames"].items():
        loc, parent = (int(x) for x in re.findall(r"=(\d+)", v))
        parents[k] = (loc, parent)
    out = {}
    for k in parents:
        chain, seen, f = [], set(), k
        while f in parents and f not in seen:
            seen.add(f)
            loc, parent = parents[f]
            chain.append(funcs.get(locs.get(loc, -1), "?"))
            f = parent
        out[k] = chain
    return out


def _categorize(hlo: str) -> dict[str, str]:
    """HLO instruction name -> category."""
    frames = _frames(hlo)
    out = {}
    for m in re.finditer(r"^\s+(?:ROOT )?%?([\w.\-]+) = [^\n]*", hlo, re.M):
        name, line = m.group(1), m.group(0)
        sf = re.search(r"stack_frame_id=(\d+)", line)
        chain = frames.get(int(sf.group(1)), []) if sf else []
        cat = "layout copies" if not sf and ("copy" in name or "transpose" in name) else "other"
        for fn in chain:
            hit = next((c for c, names in CATEGORIES if any(n in fn for n in names)), None)
            if hit:
                cat = hit
                break
        out[name] = cat
    return out


def _stepper(width: float, resolution: int, batch: int, mode: str):
    from fb_schema.topologies import mobilenetv1

    topology = mobilenetv1(width, resolution, num_classes=1000)
    model = QNet(topology, mode, fused_kernels=True, rngs=nnx.Rngs(0))
    step, state, x, y, mu = step_and_inputs(model, topology, OptSpec(kind="sgd", batch_size=batch), batch)
    hlo = step.lower(*state, x, y, jax.random.key(0), np.int32(0), mu).compile().as_text()
    return timer(step, state, x, y, mu), hlo


@click.command()
@click.option("--model", "name", type=click.Choice(list(MODELS)), default="mobilenetv1-0.25@128", show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--mode", type=click.Choice(["float", "bb"]), default="float", show_default=True)
@click.option("--steps", default=3, show_default=True)
def main(name: str, batch: int, mode: str, steps: int) -> None:
    run, hlo = _stepper(*MODELS[name], batch, mode)
    cats = _categorize(hlo)
    run(0)
    run(1)
    with tempfile.TemporaryDirectory() as d:
        with jax.profiler.trace(d, create_perfetto_trace=True):
            wall = sum(run(2 + i) for i in range(steps))
        (path,) = glob.glob(f"{d}/**/*.trace.json.gz", recursive=True)
        with gzip.open(path) as f:
            events = json.load(f)["traceEvents"]
    per = collections.Counter()
    for e in events:
        if e.get("ph") == "X" and e["name"] in cats:
            per[cats[e["name"]]] += e.get("dur", 0) / 1e3 / steps
    device = sum(per.values())
    click.echo(f"{name} batch {batch} {mode}: {wall / steps * 1e3:.1f} ms/step (traced), thunks {device:.1f} ms")
    for cat, ms in per.most_common():
        click.echo(f"  {cat:<24} {ms:8.1f} ms  {ms / device:6.1%}")
    click.echo(f"  {'host / between thunks':<24} {wall / steps * 1e3 - device:8.1f} ms")


if __name__ == "__main__":
    main()
