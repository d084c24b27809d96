"""Adapters to the user's own DORY and PULP SDK / GVSOC installations (subprocesses; nothing is bundled).

DORY (pulp-platform/dory, ``network_generate.py``) writes ``logs/`` into its working directory, deletes and
recreates ``--app_dir`` and can exit 0 without output when it cannot tile a layer, so ``run_dory`` runs it in a
scratch directory, refuses to let it delete a directory that is not a DORY application, and judges success by
DORY's own files. DORY is found by ``--dory-dir`` (else ``$DORY_HOME``), its interpreter by ``--dory-python``
(else ``$DORY_PYTHON``): the names the GVSOC kit's ``env.sh`` exports.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from fb_deploy._checker import check_model, errors
from fb_deploy._dory_graph import load_model_dir
from fb_deploy._errors import DeployError

ISA_OPTIONAL = {"xpulpv2": "mixed-sw", "xpulpnn1": "mixed-hw"}
DORY_INSTALL = "clone pulp-platform/dory with its pulp-nn and pulp-nn-mixed submodules"
PYTHON_INSTALL = 'a Python with "numpy<1.24" onnx mako ortools'


class ToolError(DeployError):
    """A missing or failing external tool; the message says what to install and which option points to it."""


def dory_optional(isa: str) -> str:
    """DORY's ``--optional`` kernel library for an ISA."""
    if isa == "xpulpnn2":
        raise ToolError("isa xpulpnn2: no public DORY/GVSOC support; use fb-profile's pulp-model backend for it")
    if isa not in ISA_OPTIONAL:
        raise ToolError(f"isa {isa!r}: one of {', '.join(ISA_OPTIONAL)} expected")
    return ISA_OPTIONAL[isa]


def find_dory(dory: str | os.PathLike | None) -> Path:
    """The DORY checkout: ``--dory-dir``, else ``$DORY_HOME``; with its entry point and kernel submodules."""
    dory = dory or os.environ.get("DORY_HOME")
    if not dory:
        raise ToolError(f"no DORY given: {DORY_INSTALL} and pass --dory-dir DIR or set DORY_HOME")
    root = Path(dory).expanduser().resolve()
    if not (root / "network_generate.py").is_file():
        raise ToolError(f"--dory-dir {root}: network_generate.py not found; {DORY_INSTALL}")
    kernels = root / "dory" / "Hardware_targets" / "PULP" / "Backend_Kernels"
    for sub in ("pulp-nn", "pulp-nn-mixed"):
        if not (kernels / sub).is_dir() or not any((kernels / sub).iterdir()):
            raise ToolError(f"--dory-dir {root}: submodule {sub} is empty; run git submodule update --init in it")
    return root


def find_python(python: str | None) -> str:
    """The interpreter DORY runs under: ``--dory-python``, else ``$DORY_PYTHON``."""
    python = python or os.environ.get("DORY_PYTHON")
    if not python:
        raise ToolError(f"no Python for DORY: create {PYTHON_INSTALL} and pass --dory-python or set DORY_PYTHON")
    found = shutil.which(python)
    if found is None:
        raise ToolError(f"--dory-python {python}: not an executable; install {PYTHON_INSTALL}")
    return found


def dory_command(
    python: str, dory: Path, config: Path, isa: str, app_dir: Path, verbose_level: str | None = None
) -> list[str]:
    """The ``network_generate.py`` command line (absolute paths: it runs in a scratch directory)."""
    cmd = [python, str(dory / "network_generate.py"), "Quantlab", "PULP.PULP_gvsoc", str(Path(config).resolve())]
    cmd += ["--optional", dory_optional(isa), "--perf_layer", "--app_dir", str(Path(app_dir).resolve())]
    if verbose_level:
        cmd += ["--verbose_level", verbose_level]
    return cmd


@dataclass
class DoryResult:
    app_dir: Path
    layers: list[str]
    command: list[str]
    log: Path


def is_dory_app(path: Path) -> bool:
    return (path / "src" / "network.c").is_file() and (path / "inc" / "network.h").is_file()


def layer_names(network_h: Path) -> list[str]:
    """``Layers_name[]`` of a generated ``inc/network.h``: DORY's fused layers, in order."""
    match = re.search(r"Layers_name\[\d*\]\s*=\s*\{([^}]*)\}", network_h.read_text())
    return re.findall(r'"([^"]+)"', match.group(1)) if match else []


def expected_checksums(network_h: Path) -> list[int]:
    """``activations_out_checksum[][]`` of a generated ``inc/network.h``: each layer's golden output byte sum."""
    match = re.search(r"activations_out_checksum\[\d*\]\[\d*\]\s*=\s*\{(.*?)\};", network_h.read_text(), re.S)
    rows = re.findall(r"\{\s*(-?\d+)", match.group(1)) if match else []
    return [int(x) for x in rows]


def run_dory(
    model_dir: str | os.PathLike,
    dory: str | os.PathLike | None,
    isa: str,
    app_dir: str | os.PathLike | None = None,
    python: str | None = None,
    verbose_level: str | None = None,
    timeout: float = 600,
    run=subprocess.run,
    check: bool = True,
    log_dir: str | os.PathLike | None = None,
) -> DoryResult:
    """Generate the PULP application of a DORY model directory with the user's DORY.

    Raises:
        ToolError: DORY, its Python or submodules missing; DORY failed, or exited 0 without an application.
        DeployError: the model breaks a DORY rule (checked first unless ``check`` is False: DORY's own errors
            are cryptic, and some models it accepts compute wrong results).
    """
    dory_optional(isa)  # an unsupported ISA (xpulpnn2) fails before anything runs
    onnx_path, _, directory = load_model_dir(model_dir)
    config = directory / "config.json"
    if not config.is_file():
        raise DeployError(f"{directory}: config.json missing (write the model with fb-deploy export)")
    bad = errors(check_model(config)) if check else []
    if bad:
        raise DeployError(f"{onnx_path}: {bad[0]}")
    root, py = find_dory(dory), find_python(python)
    app = Path(app_dir) if app_dir else directory / "app"
    app = app.resolve()
    if app.exists() and any(app.iterdir()) and not is_dory_app(app):
        raise ToolError(f"--app-dir {app}: exists and is not a DORY application; DORY would delete it")
    cmd = dory_command(py, root, config, isa, app, verbose_level)
    scratch = Path(tempfile.mkdtemp(prefix="fb-dory-"))
    log = Path(log_dir or directory) / "dory.log"
    try:
        proc = run(cmd, cwd=scratch, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"DORY did not finish within {timeout:.0f} s (logs in {scratch})") from None
    log.write_text(f"$ {shlex.join(cmd)}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    text = proc.stdout + proc.stderr
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise ToolError(f"DORY failed (exit {proc.returncode}): {last} (log {log}, stage dumps in {scratch}/logs)")
    # The tilers print "... not yet working. Exiting..." or "... ERROR: no L3-L2 tiling ... Exiting..." and exit 0.
    exits = [x.strip() for x in text.splitlines() if "Exiting" in x]
    if exits:
        raise ToolError(f"DORY exited 0 without an application: {exits[0]} (see fb-deploy check --memory)")
    if "Done!" not in proc.stdout or not is_dory_app(app):
        raise ToolError(f"DORY exited 0 but produced no application in {app} (log {log}, stage dumps in {scratch})")
    shutil.rmtree(scratch, ignore_errors=True)
    return DoryResult(app, layer_names(app / "inc" / "network.h"), cmd, log)
