"""The ``gvsoc`` backend: measure each point on the user's DORY + PULP SDK + GVSOC installation, through fb-deploy.

Per (layer type, b_in, b_wt): ``fb-deploy layer KEY --b-in N --b-wt N --b-out N -o DIR`` writes a one-layer DORY
model directory, and ``fb-deploy gvsoc DIR --flow mixed-sw|mixed-hw`` (XpulpV2 | XpulpNN) generates it with DORY,
builds it with the PULP SDK, runs it on GVSOC with every layer's checksum checked and writes ``cycles.json``; the
profiled layer's cycles are read from it. fb-deploy is the one GVSOC adapter (commands, flags, log parsing); this
backend only calls its command line. The tools are located by the same options and environment variables as in
fb-deploy: ``--dory-dir`` (``DORY_HOME``), ``--dory-python`` (``DORY_PYTHON``), ``--pulp-sdk`` (``PULP_SDK_HOME``),
which the GVSOC kit's ``env.sh`` exports. This is how the Free Bits paper (arXiv 2307.02894, Sec. IV) measured
its tables.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fb_profile._toolchain import Toolchain, identify
from fb_schema import LayerType, Target

GVSOC_ISAS = {"xpulpv2": ("mixed-sw", "pulp-open"), "xpulpnn1": ("mixed-hw", "pulp-open-nn")}
BITS = (2, 4, 8)
ENV = {"dory_dir": "DORY_HOME", "dory_python": "DORY_PYTHON", "pulp_sdk": "PULP_SDK_HOME"}


def deploy_command(fb_deploy: str, key: str, b_in: int, b_wt: int | None, b_out: int, out_dir: str) -> list[str]:
    """fb-deploy's one-layer DORY model (``--b-wt`` left out for add / pool layers, which have no weights)."""
    cmd = [fb_deploy, "layer", key, "--b-in", str(b_in)]
    if b_wt is not None:
        cmd += ["--b-wt", str(b_wt)]
    return cmd + ["--b-out", str(b_out), "-o", out_dir]


def gvsoc_command(fb_deploy: str, model_dir: str, out_dir: str, isa: str, tools: dict[str, str | None]) -> list[str]:
    """``fb-deploy gvsoc`` for the ISA's flow; tool options only where given (else fb-deploy reads the env)."""
    cmd = [fb_deploy, "gvsoc", model_dir, "--flow", GVSOC_ISAS[isa][0], "-o", out_dir]
    for key, value in tools.items():
        if value:
            cmd += [f"--{key.replace('_', '-')}", value]
    return cmd


def layer_cycles(cycles: dict[str, Any], name: str | None) -> int:
    """Cycles of the profiled DORY layer ``name`` in fb-deploy's ``cycles.json`` (the last layer if unnamed)."""
    layers = cycles.get("layers") or []
    found = next((x for x in layers if x["name"] == name), None) if name else (layers[-1] if layers else None)
    if found is None or found.get("cycles") is None:
        seen = ", ".join(x["name"] for x in layers) or "none"
        raise RuntimeError(f"no cycle count for DORY layer {name!r} in cycles.json; found {seen}")
    return int(found["cycles"])


@dataclass
class GvsocBackend:
    """Measures points on GVSOC through ``fb-deploy gvsoc`` (tool paths from options or environment variables)."""

    isa: str
    dory_python: str | None = None
    dory_dir: str | None = None
    pulp_sdk: str | None = None
    fb_deploy: str | None = None
    work_dir: str | None = None
    timeout: float = 3600.0
    name: str = "gvsoc"
    version: str = "2"
    chunk: int = 1  # minutes per point: cache and report each one
    _toolchain: Toolchain | None = None

    @classmethod
    def from_spec(cls, isa: str, **options: Any) -> GvsocBackend:
        if isa == "xpulpnn2":
            raise ValueError(
                "gvsoc:xpulpnn2: there is no public DORY/GVSOC support for XpulpNN-mixed; use pulp-model:xpulpnn2"
            )
        if isa not in GVSOC_ISAS:
            raise ValueError(f"unknown ISA {isa!r} for the gvsoc backend; expected one of {', '.join(GVSOC_ISAS)}")
        defaults = {k: os.environ.get(v) for k, v in ENV.items()}
        beside = Path(sys.executable).parent / "fb-deploy"  # installed with this interpreter (a venv not on PATH)
        defaults["fb_deploy"] = os.environ.get("FB_DEPLOY") or (str(beside) if beside.is_file() else "fb-deploy")
        given = {k: v for k, v in options.items() if v is not None}
        unknown = set(given) - set(defaults) - {"work_dir", "timeout"}
        if unknown:
            raise ValueError(f"gvsoc backend: unknown option(s) {', '.join(sorted(unknown))}")
        return cls(isa, **{**defaults, **given})

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.isa}"

    def toolchain_id(self) -> Toolchain:
        """The compiler that builds the applications (``PULP_RISCV_GCC_TOOLCHAIN``; identified once)."""
        if self._toolchain is None:
            self._toolchain = identify(os.environ.get("PULP_RISCV_GCC_TOOLCHAIN"))
        return self._toolchain

    def cache_params(self) -> dict[str, Any]:
        # Commits and compiler, not paths: two checkouts at the same commits share points, two compilers never do.
        prov = self.provenance()
        return {"isa": self.isa, "toolchain": prov["toolchain"]["version"], "profile": prov["toolchain"]["profile"],
                "commits": prov["commits"]}  # fmt: skip

    def provenance(self) -> dict[str, Any]:
        """Commits of GVSOC, the PULP SDK, DORY and its kernel libraries, and the toolchain: what a table records."""
        gvsoc = shutil.which("gvsoc")
        roots = {"gvsoc": str(Path(gvsoc).resolve().parent) if gvsoc else None, "pulp-sdk": self.pulp_sdk,
                 "dory": self.dory_dir}  # fmt: skip
        if self.dory_dir:
            for sub in ("pulp-nn", "pulp-nn-mixed"):
                found = next((p for p in Path(self.dory_dir).rglob(sub) if (p / ".git").exists()), None)
                roots[sub] = str(found) if found else None
        commits = {name: git_head(path) for name, path in roots.items() if path}
        return {"toolchain": self.toolchain_id().to_json(), "commits": commits,
                "flow": GVSOC_ISAS[self.isa][0], "gvsoc_target": GVSOC_ISAS[self.isa][1]}  # fmt: skip

    def target(self, b_out: int, allowed_bits: tuple[int, ...]) -> Target:
        return Target(
            f"gvsoc-{self.isa}-{self.toolchain_id().profile}",
            self.isa,
            8,
            65536,
            524288,
            self.name,
            self.version,
            "cycles",
            b_out,
            tuple(sorted(allowed_bits)),
        )

    def check(self, bits: tuple[int, ...], b_out: int = 8) -> None:
        bad = sorted((set(bits) | {b_out}) - set(BITS))
        if bad:
            raise ValueError(f"{self.spec}: bit width(s) {', '.join(map(str, bad))} not supported by DORY's kernels")

    def preflight(self) -> None:
        """Raise a one-line ValueError naming the first missing tool, what to install and which option to set."""
        if shutil.which(self.fb_deploy or "fb-deploy") is None:
            raise ValueError(
                f"gvsoc backend: fb-deploy not found ({self.fb_deploy!r}): install it from this "
                "repository (pip install -e packages/fb-deploy) or point --fb-deploy to it"
            )
        if not self.dory_dir or not (Path(self.dory_dir) / "network_generate.py").is_file():
            raise ValueError(
                f"gvsoc backend: DORY not found ({self.dory_dir!r} has no network_generate.py): clone "
                "pulp-platform/dory with its submodules and point --dory-dir (or DORY_HOME) to it"
            )
        python = self.dory_python and shutil.which(self.dory_python)
        hint = (
            "DORY needs its own interpreter with numpy<1.24, onnx, mako, ortools: create a venv (pip install "
            "'numpy<1.24' onnx mako ortools) and point --dory-python (or DORY_PYTHON) to its python"
        )
        if not python:
            raise ValueError(f"gvsoc backend: DORY's interpreter not found ({self.dory_python!r}): {hint}")
        probe = subprocess.run(
            [python, "-c", "import onnx, mako, ortools, numpy; print(numpy.__version__)"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        version = probe.stdout.strip().split(".")
        if probe.returncode != 0 or len(version) < 2 or (int(version[0]), int(version[1])) >= (1, 24):
            found = probe.stdout.strip() or (probe.stderr.strip().splitlines() or ["?"])[-1]
            raise ValueError(f"gvsoc backend: {python} is not usable for DORY ({found}): {hint}")
        config = Path(self.pulp_sdk or "") / "configs" / f"{GVSOC_ISAS[self.isa][1]}.sh"
        if not self.pulp_sdk or not config.is_file():
            raise ValueError(
                f"gvsoc backend: PULP SDK not found ({self.pulp_sdk!r} has no configs/{config.name}): "
                "clone pulp-platform/pulp-sdk and point --pulp-sdk (or PULP_SDK_HOME) to it"
            )
        toolchain = os.environ.get("PULP_RISCV_GCC_TOOLCHAIN")
        if not toolchain or not (Path(toolchain) / "bin" / "riscv32-unknown-elf-gcc").is_file():
            raise ValueError(
                f"gvsoc backend: RISC-V GCC not found (PULP_RISCV_GCC_TOOLCHAIN={toolchain!r} has no "
                "bin/riscv32-unknown-elf-gcc): export it (the GVSOC kit's env.sh does)"
            )
        self.toolchain_id()

    def _run(self, step: str, cmd: list[str], deterministic: bool = False) -> None:
        """Run one tool in its own session; on a timeout the whole session (make, the simulator) is killed.

        A timeout of the simulation is a hang (GVSOC is deterministic), so it is a ``SimulationError`` when
        ``deterministic``.
        """
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=self.timeout)
        except subprocess.TimeoutExpired:
            _kill_session(proc)
            error = SimulationError if deterministic else RuntimeError
            raise error(f"{step} did not finish within {self.timeout:.0f} s (a hang, or raise --timeout)") from None
        finally:
            _kill_session(proc)  # a simulator left behind by a tool that gave up on it
        if proc.returncode != 0:
            tail = (err.strip() or out.strip()).splitlines()[-1:] or [""]
            raise RuntimeError(f"{step} failed (exit {proc.returncode}): {tail[0].removeprefix('Error: ')}")

    def latency(self, lt: LayerType, b_in: int, b_wt: int | None, b_out: int = 8) -> int:
        point = f"{lt.key}_a{b_in}_w{b_wt or 0}_o{b_out}"
        with tempfile.TemporaryDirectory(prefix="fb-gvsoc-") as tmp:
            root = Path(self.work_dir) / point if self.work_dir else Path(tmp)
            model, run = root / "model", root / "run"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            deploy = shutil.which(self.fb_deploy or "fb-deploy") or "fb-deploy"
            try:
                self._run("fb-deploy layer", deploy_command(deploy, lt.key, b_in, b_wt, b_out, str(model)))
            except RuntimeError as exc:  # fb-deploy refuses the point (e.g. channels DORY cannot pack): for good
                raise NotDeployable(str(exc)) from None
            tools = {"dory_dir": self.dory_dir, "dory_python": self.dory_python, "pulp_sdk": self.pulp_sdk}
            # fb-deploy's own limit is set above ours, so that ours kills the whole session.
            cmd = gvsoc_command(deploy, str(model), str(run), self.isa, tools) + ["--timeout", str(10 * self.timeout)]
            try:
                self._run("fb-deploy gvsoc", cmd, deterministic=True)
            except SimulationError:
                raise
            except RuntimeError as exc:
                if (run / "cycles.json").is_file():  # the run finished: a wrong or missing checksum
                    raise SimulationError(str(exc).replace(f"{model} on ", "")) from None
                raise
            info = json.loads((model / "layer.json").read_text()) if (model / "layer.json").is_file() else {}
            return layer_cycles(json.loads((run / "cycles.json").read_text()), info.get("dory_layer"))


class SimulationError(RuntimeError):
    """A wrong result or a hang on the simulator: deterministic, so the sweep does not retry it."""

    retry = False


class NotDeployable(RuntimeError):
    """fb-deploy cannot build the one-layer network of this point (deterministic: not retried)."""

    retry = False


def _kill_session(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def git_head(path: str) -> str | None:
    """The commit checked out at ``path`` (None if it is not a git checkout)."""
    try:
        proc = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
