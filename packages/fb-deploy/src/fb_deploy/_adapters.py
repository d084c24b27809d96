"""Adapters to the user's own DORY and PULP SDK / GVSOC installations (subprocesses; nothing is bundled).

DORY (pulp-platform/dory, ``network_generate.py``) writes ``logs/`` into its working directory, deletes and
recreates ``--app_dir`` and can exit 0 without output when it cannot tile a layer, so ``run_dory`` runs it in a
scratch directory, refuses to let it delete a directory that is not a DORY application, and judges success by
DORY's own files. ``run_gvsoc`` runs ``make clean all run platform=gvsoc CORE=8`` and parses the cycle prints
of the generated application (dory_format.md sections 5-6; three print formats across DORY versions).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    """The DORY checkout (``--dory``), with its entry point and kernel submodules present."""
    if not dory:
        raise ToolError(f"no DORY given: {DORY_INSTALL} and pass --dory PATH")
    root = Path(dory).expanduser().resolve()
    if not (root / "network_generate.py").is_file():
        raise ToolError(f"--dory {root}: network_generate.py not found; {DORY_INSTALL}")
    kernels = root / "dory" / "Hardware_targets" / "PULP" / "Backend_Kernels"
    for sub in ("pulp-nn", "pulp-nn-mixed"):
        if not (kernels / sub).is_dir() or not any((kernels / sub).iterdir()):
            raise ToolError(f"--dory {root}: submodule {sub} is empty; run git submodule update --init in it")
    return root


def find_python(python: str | None) -> str:
    """The interpreter DORY runs under: ``--dory-python``, else ``$FB_DORY_PYTHON``."""
    python = python or os.environ.get("FB_DORY_PYTHON")
    if not python:
        raise ToolError(f"no Python for DORY: create {PYTHON_INSTALL} and pass --dory-python or set FB_DORY_PYTHON")
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


def run_dory(
    model_dir: str | os.PathLike,
    dory: str | os.PathLike | None,
    isa: str,
    app_dir: str | os.PathLike | None = None,
    python: str | None = None,
    verbose_level: str | None = None,
    timeout: float = 600,
    run=subprocess.run,
) -> DoryResult:
    """Generate the PULP application of a DORY model directory with the user's DORY.

    Raises:
        ToolError: DORY, its Python or submodules missing; DORY failed, or exited 0 without an application.
        DeployError: the model breaks a DORY rule (checked first: DORY's own errors are cryptic).
    """
    dory_optional(isa)  # an unsupported ISA (xpulpnn2) fails before anything runs
    onnx_path, _, directory = load_model_dir(model_dir)
    config = directory / "config.json"
    if not config.is_file():
        raise DeployError(f"{directory}: config.json missing (write the model with fb-deploy export)")
    bad = errors(check_model(config))
    if bad:
        raise DeployError(f"{onnx_path}: {bad[0]}")
    root, py = find_dory(dory), find_python(python)
    app = Path(app_dir) if app_dir else directory / "app"
    app = app.resolve()
    if app.exists() and any(app.iterdir()) and not is_dory_app(app):
        raise ToolError(f"--app-dir {app}: exists and is not a DORY application; DORY would delete it")
    cmd = dory_command(py, root, config, isa, app, verbose_level)
    scratch = Path(tempfile.mkdtemp(prefix="fb-dory-"))
    log = directory / "dory.log"
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


# -- GVSOC ----------------------------------------------------------------------------------------------------------
def gvsoc_command(app_dir: str | os.PathLike, sdk_setup: str | os.PathLike | None = None, cores: int = 8) -> list[str]:
    """``make clean all run platform=gvsoc CORE=8`` (the Makefile's default is 1 core), optionally after sourcing."""
    make = ["make", "-C", str(Path(app_dir).resolve()), "clean", "all", "run", "platform=gvsoc", f"CORE={cores}"]
    if sdk_setup is None:
        return make
    return ["bash", "-c", f"source {shlex.quote(str(Path(sdk_setup).resolve()))} >/dev/null && {shlex.join(make)}"]


def check_sdk(sdk_setup: str | os.PathLike | None, env: dict[str, str] | None = None) -> None:
    """The PULP SDK environment the generated Makefile needs (``$RULES_DIR/pmsis_rules.mk``, the PULP GCC)."""
    hint = "source pulp-sdk/configs/pulp-open.sh (pulp-open-nn.sh for xpulpnn1) or pass --sdk-setup SCRIPT"
    if sdk_setup is not None:
        if not Path(sdk_setup).is_file():
            raise ToolError(f"--sdk-setup {sdk_setup}: not a file; {hint}")
        return
    env = os.environ if env is None else env
    rules = env.get("RULES_DIR")
    if not rules or not (Path(rules) / "pmsis_rules.mk").is_file():
        raise ToolError(f"no PULP SDK environment ($RULES_DIR/pmsis_rules.mk not found): {hint}")
    if not env.get("PULP_RISCV_GCC_TOOLCHAIN"):
        raise ToolError("PULP_RISCV_GCC_TOOLCHAIN is not set: install the PULP RISC-V GCC toolchain and export it")
    if shutil.which("make") is None:
        raise ToolError("make not found: install make")


@dataclass
class Cycles:
    """Cycles parsed from a GVSOC run; ``format`` names which DORY print format was found."""

    format: str
    layers: list[dict[str, Any]] = field(default_factory=list)
    total_cycles: int | None = None
    total_macs: int | None = None
    checksums_ok: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "layers": self.layers,
            "total_cycles": self.total_cycles,
            "total_macs": self.total_macs,
            "checksums_ok": self.checksums_ok,
        }


_CURRENT = re.compile(
    r"^(?P<name>\S[^\n]*?) performance:\s*\n\s*- num cycles: (?P<cyc>\d+)\s*\n\s*- MACs: (?P<macs>\d+)", re.M
)
_OCT2022 = re.compile(r"^\s*Layer\s+(?P<idx>\d+)\s*: num_cycles: (?P<cyc>\d+)\s*, MACs: (?P<macs>\d+)", re.M)
_OCT2022_TOTAL = re.compile(r"^num_cycles: (?P<cyc>\d+)\s*\nMACs: (?P<macs>\d+)", re.M)
_Y2020 = re.compile(r"^\[(?P<idx>\d+)\] : num_cycles: (?P<cyc>\d+)", re.M)
_Y2020_MACS = re.compile(r"^\[(?P<idx>\d+)\] : MACs: (?P<macs>\d+)", re.M)


def parse_cycles(text: str) -> Cycles:
    """Per-layer and total cycles from a DORY application's output, in any of the three known formats.

    Current DORY (``<Layer> performance:`` blocks plus ``Final``), DORY up to Oct 2022 (``Layer N: num_cycles:``
    lines plus an unlabelled total block) and 2020 DORY (``[N] : num_cycles:`` lines).

    Raises:
        ToolError: no cycle print was found (say so rather than report zero).
    """
    checks = re.findall(r"Checking [^:]+:\s*Checksum (OK|Failed)", text)
    ok = None if not checks else all(c == "OK" for c in checks)
    blocks = list(_CURRENT.finditer(text))
    if blocks:
        out = Cycles("dory-2023", checksums_ok=ok)
        for m in blocks:
            entry = {"name": m["name"].strip(), "cycles": int(m["cyc"]), "macs": int(m["macs"])}
            if entry["name"] == "Final":
                out.total_cycles, out.total_macs = entry["cycles"], entry["macs"]
            else:
                out.layers.append({"index": len(out.layers), **entry})
        if out.total_cycles is None:
            out.total_cycles = sum(x["cycles"] for x in out.layers)
        return out
    lines = list(_OCT2022.finditer(text))
    if lines:
        out = Cycles("dory-2022", checksums_ok=ok)
        out.layers = [
            {"index": int(m["idx"]), "name": None, "cycles": int(m["cyc"]), "macs": int(m["macs"])} for m in lines
        ]
        total = _OCT2022_TOTAL.search(text)
        out.total_cycles = int(total["cyc"]) if total else sum(x["cycles"] for x in out.layers)
        out.total_macs = int(total["macs"]) if total else None
        return out
    lines = list(_Y2020.finditer(text))
    if lines:
        macs = {int(m["idx"]): int(m["macs"]) for m in _Y2020_MACS.finditer(text)}
        out = Cycles("dory-2020", checksums_ok=ok)
        out.layers = [
            {"index": int(m["idx"]), "name": None, "cycles": int(m["cyc"]), "macs": macs.get(int(m["idx"]))}
            for m in lines
        ]
        out.total_cycles = sum(x["cycles"] for x in out.layers)
        return out
    raise ToolError("no cycle counts in the GVSOC output (build the app with fb-deploy dory, which adds --perf_layer)")


def run_gvsoc(
    app_dir: str | os.PathLike,
    sdk_setup: str | os.PathLike | None = None,
    timeout: float = 1800,
    run=subprocess.run,
) -> Cycles:
    """Build and run a DORY application on GVSOC; per-layer and total cycles.

    Raises:
        ToolError: no PULP SDK environment, the build or the run failed, or no cycles were printed.
    """
    app = Path(app_dir)
    if not is_dory_app(app):
        raise ToolError(f"{app}: not a DORY application (src/network.c missing); generate it with fb-deploy dory")
    check_sdk(sdk_setup)
    cmd = gvsoc_command(app, sdk_setup)
    try:
        proc = run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise ToolError(f"GVSOC run did not finish within {timeout:.0f} s") from None
    (app / "gvsoc.log").write_text(f"$ {shlex.join(cmd)}\n{proc.stdout}\n--- stderr ---\n{proc.stderr}")
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or proc.stdout.strip().splitlines() or ["(no output)"])[-1]
        raise ToolError(f"make ... platform=gvsoc failed (exit {proc.returncode}): {last} (log {app / 'gvsoc.log'})")
    cycles = parse_cycles(proc.stdout)
    names = layer_names(app / "inc" / "network.h")
    for entry in cycles.layers:
        if entry["name"] is None and entry["index"] < len(names):
            entry["name"] = names[entry["index"]]
    return cycles
