"""The stacked (vmap) mu sweep finds exactly the sequential sweep's configurations, in float64 (see
``fb_search._float64``: in float32 the two programs' last-bit rounding can flip a gate that ends near its
threshold, so ``test_sweep.py`` compares the layers decided by a margin there)."""

import json
import os
import subprocess
import sys

import jax
import pytest

import fb_search

MUS = (0.0, 0.03, 0.3)

SCRIPT = """
import json, sys
import fb_search
ckpt, out, mus = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
data = fb_search.load_digits_data()
found = {}
for how in ("off", "vmap"):
    cfgs = fb_search.search_runs("digitsnet", data, ckpt, [fb_search.SearchRun("orig", mu, f"{out}/{how}")
                                 for mu in mus], stacked=how, sensitivity=False, dtype="float64")
    found[how] = [[[c.name, c.b_in, c.b_wt] for c in cfg.layers] for cfg in cfgs]
print(json.dumps(found))
"""


@pytest.mark.slow
def test_stacked_sweep_finds_the_sequential_configs_in_float64(pipeline, tmp_path):
    """The recipe's 300 steps, orig variant, three mu, in a process with JAX's 64-bit mode on."""
    env = {**os.environ, "JAX_ENABLE_X64": "1", "FB_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-c", SCRIPT, str(pipeline["ckpt"]), str(tmp_path), json.dumps(MUS)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    for mu, seq, stk in zip(MUS, found["off"], found["vmap"]):
        assert stk == seq, f"mu={mu}"
    # a sweep that decides something: three different configurations, the largest mu below 8 bits somewhere
    assert len({json.dumps(c) for c in found["off"]}) == len(MUS)
    assert any(b is not None and b < 8 for _, *bits in found["off"][-1] for b in bits)


def test_float64_search_needs_jax_64_bit_mode(digits, untrained_ckpt, tmp_path):
    assert not jax.config.jax_enable_x64  # the test session runs in float32
    with pytest.raises(ValueError, match="JAX_ENABLE_X64=1"):
        fb_search.search_runs("digitsnet", digits, untrained_ckpt, [fb_search.SearchRun(out_dir=tmp_path)],
                              steps=1, dtype="float64")  # fmt: skip
    with pytest.raises(ValueError, match="dtype: expected float32 or float64, got 'float16'"):
        fb_search.search_runs("digitsnet", digits, untrained_ckpt, [fb_search.SearchRun(out_dir=tmp_path)],
                              steps=1, dtype="float16")  # fmt: skip
