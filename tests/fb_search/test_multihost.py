"""Multi-host start: two local processes on loopback join one run through the CLI entry and agree on the loss."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys

import pytest
from conftest import ROOT

TIMEOUT_S = 420  # both processes compile on a shared CPU; killed (never left running) beyond this

CHILD = """
import sys
from fb_search._cli import main
main(sys.argv[1:], standalone_mode=False)
import jax
print(f"PROCESS {jax.process_index()} OF {jax.process_count()}", flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JAX_", "XLA_"))}
    return {**env, "JAX_PLATFORMS": "cpu", **extra}


def test_import_does_no_jax_work():
    """jax.distributed.initialize() must come before any JAX computation; importing must not do one."""
    code = (
        "import sys; sys.path.insert(0, 'tools'); import fb_search, fb_deploy, fbpipe.pipeline; "
        "from jax._src import xla_bridge; print(xla_bridge.backends_are_initialized())"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False", "importing fb_search initialized a JAX backend"


@pytest.mark.slow  # two processes train three steps
def test_two_processes_on_loopback_agree_on_the_loss(tmp_path):
    port = _free_port()
    args = ["train-float", "--network", "tinynet", "--steps", "3", "--out", str(tmp_path / "run")]
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, *args],
            cwd=ROOT,
            env=_env(JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2", JAX_PROCESS_ID=str(i)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outs = [p.communicate(timeout=TIMEOUT_S)[0] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for i, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"process {i} failed: {out.strip().splitlines()[-1:]}"
        assert f"PROCESS {i} OF 2" in out, f"process {i} did not join the 2-process run"
    losses = [float(re.search(r"train loss ([-\d.e]+)", out).group(1)) for out in outs]
    assert losses[0] == losses[1] and 0 < losses[0] < 10
