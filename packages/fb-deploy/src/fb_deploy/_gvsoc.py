"""Run a DORY model directory on GVSOC: generate (DORY), build (PULP SDK), simulate, check every layer, count cycles.

The tools are located by three options, each with the environment variable that the GVSOC kit's ``env.sh``
exports: ``--dory-dir`` (``DORY_HOME``), ``--dory-python`` (``DORY_PYTHON``) and ``--pulp-sdk`` (``PULP_SDK_HOME``).
The application is generated with ``--perf_layer --verbose_level Check_all+Perf_final`` so that every layer
prints its cycles and its output checksum; the build sources ``<pulp-sdk>/configs/<target>.sh`` and needs the
RISC-V GCC and ``gvsoc`` on ``PATH`` (``PULP_RISCV_GCC_TOOLCHAIN``), which ``env.sh`` also provides.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fb_deploy._adapters import ToolError, expected_checksums, layer_names, run_dory
from fb_deploy._gvsoc_log import ChecksumError, RunLog, parse_run_log
from fb_schema import write_json

# DORY --optional flow -> GVSOC target (pulp-open-nn: RI5CY cores with the XpulpNN extensions).
FLOWS = {"mixed-sw": "pulp-open", "mixed-hw": "pulp-open-nn"}
# The flow that runs a network picked for an ISA (xpulpnn2: correctness only, GVSOC has no model of its timing).
ISA_FLOWS = {"xpulpv2": "mixed-sw", "xpulpnn1": "mixed-hw", "xpulpnn2": "mixed-hw"}
ENV = {"dory_dir": "DORY_HOME", "dory_python": "DORY_PYTHON", "pulp_sdk": "PULP_SDK_HOME"}
VERBOSE_LEVEL = "Check_all+Perf_final"
CYCLES_SCHEMA = "freebits/gvsoc-cycles/v1"


@dataclass
class GvsocTools:
    """Where DORY, its interpreter and the PULP SDK are; ``None`` falls back to the environment (see ``ENV``)."""

    dory_dir: str | None = None
    dory_python: str | None = None
    pulp_sdk: str | None = None

    def resolved(self, env: dict[str, str] | None = None) -> GvsocTools:
        env = os.environ if env is None else env
        return GvsocTools(*(getattr(self, k) or env.get(v) for k, v in ENV.items()))

    def check_sdk(self, target: str) -> Path:
        """The SDK's board script for ``target``; raises ToolError naming the option and variable to set."""
        if not self.pulp_sdk:
            raise ToolError("no PULP SDK: pass --pulp-sdk DIR or set PULP_SDK_HOME (source the GVSOC kit's env.sh)")
        script = Path(self.pulp_sdk) / "configs" / f"{target}.sh"
        if not script.is_file():
            raise ToolError(f"--pulp-sdk {self.pulp_sdk}: configs/{target}.sh not found; point it to a pulp-sdk")
        gcc = Path(os.environ.get("PULP_RISCV_GCC_TOOLCHAIN", "")) / "bin" / "riscv32-unknown-elf-gcc"
        if not gcc.is_file():
            raise ToolError(
                f"PULP_RISCV_GCC_TOOLCHAIN: {gcc} not found; export the RISC-V GCC (the GVSOC kit's env.sh does)"
            )
        for tool in ("make", "gvsoc"):
            if shutil.which(tool) is None:
                raise ToolError(f"{tool} not found on PATH; source the GVSOC kit's env.sh (or install {tool})")
        return script


def flow_target(flow: str) -> str:
    if flow not in FLOWS:
        raise ToolError(f"flow {flow!r}: one of {', '.join(FLOWS)} expected")
    return FLOWS[flow]


def build_run_command(app_dir: Path, sdk_script: Path, cores: int = 8) -> list[str]:
    """Build and simulate in the SDK's environment (CORE=8: the generated Makefile defaults to one core)."""
    app = shlex.quote(str(app_dir.resolve()))
    make = f"make -C {app} clean all CORE={cores} platform=gvsoc && make -C {app} run CORE={cores} platform=gvsoc"
    return ["bash", "-c", f"source {shlex.quote(str(sdk_script.resolve()))} >/dev/null && {make}"]


def sdk_environment(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for the SDK's build: without this interpreter's virtualenv on ``PATH``.

    The SDK's tools (``gapy``) run under ``#!/usr/bin/env python3`` and need the packages of the Python the SDK
    was set up with (the kit's ``gvenv``); fb-deploy's own venv, if first on ``PATH``, would shadow it.
    """
    env = dict(os.environ if env is None else env)
    if sys.prefix != sys.base_prefix:
        venv_bin = str(Path(sys.prefix) / "bin")
        env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    for var in ("VIRTUAL_ENV", "PYTHONHOME"):
        env.pop(var, None)
    return env


def run_group(cmd: list[str], timeout: float) -> tuple[int | None, str]:
    """Run ``cmd`` in its own process group; on timeout kill the whole group (make, gapy and the simulator
    would outlive a killed shell). Returns (exit code or None on timeout, stdout + stderr)."""
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=sdk_environment(), start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
        return proc.returncode, out
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return None, out


def _git_commit(path: str | os.PathLike | None) -> str | None:
    if not path:
        return None
    proc = subprocess.run(["git", "-C", str(path), "rev-parse", "HEAD"], capture_output=True, text=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def tool_versions(tools: GvsocTools) -> dict[str, Any]:
    """Commits of GVSOC, the PULP SDK and DORY, and the RISC-V GCC's name and version line."""
    gvsoc = shutil.which("gvsoc")
    gcc = Path(os.environ.get("PULP_RISCV_GCC_TOOLCHAIN", "")) / "bin" / "riscv32-unknown-elf-gcc"
    version = None
    if gcc.is_file():
        proc = subprocess.run([str(gcc), "--version"], capture_output=True, text=True)
        version = (proc.stdout.splitlines() or [None])[0]
    return {
        "gvsoc": _git_commit(Path(gvsoc).resolve().parent if gvsoc else None),
        "pulp_sdk": _git_commit(tools.pulp_sdk),
        "dory": _git_commit(tools.dory_dir),
        "toolchain": {"name": gcc.name if gcc.is_file() else None, "version": version},
    }


def cycles_json(log: RunLog, flow: str, names: list[str], versions: dict[str, Any], cores: int) -> dict[str, Any]:
    return {
        "schema": CYCLES_SCHEMA,
        "flow": flow,
        "target": FLOWS[flow],
        "cores": cores,
        "layers": [layer.to_json() for layer in log.layers],
        "network_layers": len(names),
        "checksums_ok": sum(layer.checksum == "ok" for layer in log.layers),
        "total_cycles": log.total_cycles,
        "total_macs": log.total_macs,
        "tools": versions,
    }


def run_gvsoc(
    model_dir: str | os.PathLike,
    flow: str = "mixed-sw",
    out_dir: str | os.PathLike | None = None,
    tools: GvsocTools | None = None,
    check: bool = True,
    cores: int = 8,
    timeout: float = 1800,
) -> dict[str, Any]:
    """Generate, build and run MODEL_DIR on GVSOC; write ``OUT_DIR/cycles.json`` and ``gvsoc.log``; return the JSON.

    Args:
      model_dir: a DORY model directory (``fb-deploy export``).
      flow: DORY's ``--optional`` kernels: ``mixed-sw`` (XpulpV2, pulp-open) or ``mixed-hw`` (XpulpNN, pulp-open-nn).
      out_dir: where the application, the logs and ``cycles.json`` go (default ``MODEL_DIR/gvsoc-<flow>``).
      tools: DORY, its Python and the PULP SDK (default: the environment).
      check: run fb-deploy's DORY-rule checker first (a model it rejects is not run).

    Raises:
        ToolError: a tool is missing, or generating, building or simulating failed.
        ChecksumError: a layer's checksum failed or fewer layers reported than the network has; the message
            names the first such layer with the expected and computed checksums (``cycles.json`` is still written).
    """
    target = flow_target(flow)
    tools = (tools or GvsocTools()).resolved()
    script = tools.check_sdk(target)
    out = Path(out_dir) if out_dir else Path(model_dir) / f"gvsoc-{flow}"
    out.mkdir(parents=True, exist_ok=True)
    isa = {"mixed-sw": "xpulpv2", "mixed-hw": "xpulpnn1"}[flow]
    dory = run_dory(
        model_dir, tools.dory_dir, isa, out / "app", tools.dory_python, VERBOSE_LEVEL, check=check, log_dir=out
    )
    cmd = build_run_command(dory.app_dir, script, cores)
    log_path = out / "gvsoc.log"
    returncode, text = run_group(cmd, timeout)
    log_path.write_text(f"$ {shlex.join(cmd)}\n{text}")
    if returncode is None:
        raise ToolError(f"build and GVSOC run did not finish within {timeout:.0f} s (log {log_path})")
    if "performance:" not in text and returncode != 0:
        last = (text.strip().splitlines() or ["(no output)"])[-1]
        raise ToolError(f"build or GVSOC run failed (exit {returncode}): {last} (log {log_path})")
    log = parse_run_log(text)
    names = layer_names(dory.app_dir / "inc" / "network.h")
    golden = expected_checksums(dory.app_dir / "inc" / "network.h")
    for layer in log.layers:  # DORY prints only "OK" when the sums agree; its header holds the value
        if layer.checksum == "ok" and layer.index < len(golden):
            layer.expected = layer.computed = golden[layer.index]
    result = cycles_json(log, flow, names, tool_versions(tools), cores)
    write_json(out / "cycles.json", result)
    problems = log.failures(names)
    if problems:
        raise ChecksumError(f"{Path(model_dir)} on GVSOC {target} ({flow}): {problems[0]}")
    return result
