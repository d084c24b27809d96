#!/usr/bin/env bash
# Accelerator check (< 5 min): MobileNetV1-0.75@224 float and Bayesian Bits training steps (the jitted step
# fb_search.train runs, the MobileNetV1 recipe's optimizers, 1000 classes) at batch 64 and 256 on the machine's own
# JAX (its GPU/TPU build), with this repository's packages from source (their src dirs on PYTHONPATH, no install).
#
#   bash benchmarks/device_check.sh               # python3 from PATH; PYTHON=... to choose another
#   bash benchmarks/device_check.sh --cpu-smoke   # the same code path on any machine: 0.25@128, batch 2, 1 step
#
# Prints the versions, then per configuration: median step time, images/s, compile time, the compiled step's
# temporary memory (XLA's memory analysis) and the device's peak memory so far (memory_stats; absent on CPU), and
# BB/float per batch. float32 at both batches; bfloat16 conv operands (compute_dtype) at the larger one. The
# depthwise form is the backend's default (grouped conv on GPU/TPU, taps on CPU).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
SRC=""
for p in "$ROOT"/packages/*/src; do SRC="$SRC:$p"; done
export PYTHONPATH="${SRC#:}${PYTHONPATH:+:$PYTHONPATH}"
export XLA_PYTHON_CLIENT_PREALLOCATE=false  # the peak is then what the steps use, not the preallocated pool

timeout 290 "$PYTHON" - "$@" <<'EOF'
import statistics
import sys
import time

import flax
import jax
import jax.numpy as jnp
import jaxlib
import optax
from flax import nnx

from fb_schema.topologies import mobilenetv1
from fb_search import QNet
from fb_search._ops import default_dw_impl
from fb_search._train import _train_step
from fb_search.recipes import get_recipe

smoke = "--cpu-smoke" in sys.argv[1:]
width, res, batches, steps = (0.25, 128, (2,), 1) if smoke else (0.75, 224, (64, 256), 10)
print(f"python {sys.version.split()[0]}, jax {jax.__version__}, jaxlib {jaxlib.__version__}, flax {flax.__version__}, "
      f"optax {optax.__version__}")
dev = jax.devices()[0]
print(f"backend {jax.default_backend()}, device {dev.device_kind} x{jax.device_count()}, depthwise {default_dw_impl()}; "
      f"MobileNetV1-{width:g}@{res}{' (cpu smoke: tiny setting)' if smoke else ''}")
recipe = get_recipe("mnv1_imagenet")
topology = mobilenetv1(width, res, num_classes=1000)


def stepper(mode, batch, dtype):
    """fb_search.train's jitted step on random data; returns (run(i) -> seconds, compile seconds, temp bytes)."""
    model = QNet(topology, mode, bb=recipe.BB, compute_dtype=dtype, rngs=nnx.Rngs(0))
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    base = recipe.SEARCH if mode == "bb" else recipe.FLOAT
    spec = base.__class__(**{**base.__dict__, "batch_size": batch})
    tx, step = _train_step(graphdef, spec, 1000, mode == "bb")
    state = [params, rest, tx.init(params)]
    x = jax.random.uniform(jax.random.key(0), (batch, res, res, 3))
    y = jax.random.randint(jax.random.key(1), (batch,), 0, 1000)
    mu = jnp.float32(0.01)
    t = time.perf_counter()
    compiled = step.lower(*state, x, y, jax.random.key(0), mu).compile()
    compile_s = time.perf_counter() - t
    mem = compiled.memory_analysis()
    temp = getattr(mem, "temp_size_in_bytes", 0) if mem is not None else 0

    def run(i):
        t = time.perf_counter()
        out = compiled(*state, x, y, jax.random.key(i), mu)
        jax.block_until_ready(out[0])
        state[:3] = out[:3]
        return time.perf_counter() - t

    run(0)  # first run: allocations
    return run, compile_s, temp


def peak():
    stats = dev.memory_stats() or {}
    return f"{stats['peak_bytes_in_use'] / 2**30:6.2f} GiB" if "peak_bytes_in_use" in stats else "n/a"


configs = [("float32", b) for b in batches] + [("bfloat16", batches[-1])]
for dtype, batch in configs:
    med = {}
    for mode in ("float", "bb"):
        run, compile_s, temp = stepper(mode, batch, dtype)
        med[mode] = statistics.median(run(i + 1) for i in range(steps))
        print(f"{dtype:>8} batch {batch:3d} {mode:>5}: {med[mode] * 1e3:8.1f} ms/step ({batch / med[mode]:7.0f} img/s, "
              f"compile {compile_s:5.1f} s), step temp memory {temp / 2**30:6.2f} GiB, device peak so far {peak()}",
              flush=True)
        del run
    print(f"{dtype:>8} batch {batch:3d} BB/float: {med['bb'] / med['float']:.2f}", flush=True)
EOF
