"""The ``gvsoc`` backend: measure each point on the user's DORY + PULP SDK + GVSOC installation.

Per (layer type, b_in, b_wt): fb-deploy writes a one-layer DORY model directory (``fb-deploy layer KEY --b-in N
--b-wt N --b-out N -o DIR``), DORY generates the application (``network_generate.py ... --optional mixed-sw`` for
XpulpV2, ``mixed-hw`` for XpulpNN), the PULP SDK builds and runs it on GVSOC (``make clean all run platform=gvsoc
CORE=8``) and the layer's ``num cycles`` is parsed from the output. DORY runs under the interpreter the user names
(it needs numpy < 1.24). This is how the Free Bits paper (arXiv 2307.02894, Sec. IV) measured its tables.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fb_profile._toolchain import Toolchain, identify
from fb_schema import LayerType, Target

GVSOC_ISAS = {"xpulpv2": ("mixed-sw", "pulp-open"), "xpulpnn1": ("mixed-hw", "pulp-open-nn")}
BITS = (2, 4, 8)

# DORY >= Nov 2022 (net_utils.c print_perf), DORY <= Oct 2022 (network_c_template.c), 2020 DORY (network.c).
_CURRENT = re.compile(r"^[ \t]*(?P<name>\S[^\n]*?) performance:[ \t]*\r?\n[ \t]*- num cycles: (?P<cyc>\d+)", re.M)
_OCT2022_LAYER = re.compile(r"^[ \t]*Layer\s+(?P<idx>\d+)\s*:\s*num_cycles:\s*(?P<cyc>\d+)", re.M)
_OCT2022_TOTAL = re.compile(r"^num_cycles:\s*(?P<cyc>\d+)\s*$", re.M)
_Y2020_LAYER = re.compile(r"^\s*\[(?P<idx>\d+)\]\s*:\s*num_cycles:\s*(?P<cyc>\d+)", re.M)


def parse_perf(text: str) -> dict[str, int]:
    """Cycle counts by layer name from a DORY application's output; the network total is under ``"Final"``."""
    out: dict[str, int] = {}
    for m in _CURRENT.finditer(text):
        out[m["name"].strip()] = int(m["cyc"])
    if out:
        return out
    for m in _OCT2022_LAYER.finditer(text):
        out[f"Layer {int(m['idx'])}"] = int(m["cyc"])
    for m in _OCT2022_TOTAL.finditer(text):
        out["Final"] = int(m["cyc"])
    if out:
        return out
    for m in _Y2020_LAYER.finditer(text):
        out[f"[{int(m['idx'])}]"] = int(m["cyc"])
    return out


def layer_cycles_from_log(text: str, name: str | None = None, index: int | None = None) -> int:
    """Cycles of the profiled layer: the block of ``name`` (or ``index`` in the older formats) if given, else the
    sum of all layer blocks, else the network total.

    fb-deploy's one-layer networks may put an identity layer in front (linear, add); its ``layer.json`` names the
    profiled DORY layer, which is why the name matters.

    Raises:
        RuntimeError: a checksum failed, the named layer has no block, or no cycle count was printed.
    """
    failed = [x.strip() for x in text.splitlines() if re.search(r"Checksum\s+Failed", x)]
    if failed:
        raise RuntimeError(f"the GVSOC run computed a wrong result ({failed[0]})")
    perf = parse_perf(text)
    if name is not None or index is not None:
        for candidate in (name, f"Layer {index}", f"[{index}]"):
            if candidate in perf:
                return perf[candidate]
        raise RuntimeError(f"no cycle count for DORY layer {name!r} (index {index}) in the GVSOC output; "
                           f"found {', '.join(perf) or 'none'}")  # fmt: skip
    layers = {k: v for k, v in perf.items() if k != "Final"}
    if layers:
        return sum(layers.values())
    if "Final" in perf:
        return perf["Final"]
    raise RuntimeError("no cycle count in the GVSOC output (expected DORY's '<layer> performance:' block)")


def deploy_command(fb_deploy: str, key: str, b_in: int, b_wt: int | None, b_out: int, out_dir: str) -> list[str]:
    """fb-deploy's one-layer DORY model (``--b-wt`` left out for add / pool layers, which have no weights)."""
    cmd = [fb_deploy, "layer", key, "--b-in", str(b_in)]
    if b_wt is not None:
        cmd += ["--b-wt", str(b_wt)]
    return cmd + ["--b-out", str(b_out), "-o", out_dir]


def dory_command(python: str, dory_dir: str, model_dir: str, app_dir: str, isa: str) -> list[str]:
    """DORY's generator for the PULP_gvsoc target with per-layer performance counters."""
    flow = GVSOC_ISAS[isa][0]
    return [python, str(Path(dory_dir) / "network_generate.py"), "Quantlab", "PULP.PULP_gvsoc",
            str(Path(model_dir) / "config.json"), "--app_dir", app_dir, "--optional", flow, "--perf_layer",
            "--verbose_level", "Perf_final"]  # fmt: skip


def run_command(pulp_sdk: str, app_dir: str, isa: str) -> list[str]:
    """Build and run on GVSOC in the SDK's environment (CORE=8: the Makefile defaults to one core)."""
    config = Path(pulp_sdk) / "configs" / f"{GVSOC_ISAS[isa][1]}.sh"
    script = f"source {shlex.quote(str(config))} && make -C {shlex.quote(app_dir)} clean all run platform=gvsoc CORE=8"
    return ["bash", "-c", script]


@dataclass
class GvsocBackend:
    """Measures points on GVSOC through the user's tools (paths from options or environment variables)."""

    isa: str
    dory_python: str | None = None
    dory_dir: str | None = None
    pulp_sdk: str | None = None
    toolchain: str | None = None
    fb_deploy: str | None = None
    work_dir: str | None = None
    timeout: float = 3600.0
    runner: str | None = None
    kit: str | None = None
    name: str = "gvsoc"
    version: str = "1"
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
        env = os.environ
        defaults = {
            "dory_python": env.get("FB_DORY_PYTHON"),
            "dory_dir": env.get("FB_DORY_DIR"),
            "pulp_sdk": env.get("FB_PULP_SDK"),
            "toolchain": env.get("PULP_RISCV_GCC_TOOLCHAIN"),
            "fb_deploy": env.get("FB_DEPLOY") or "fb-deploy",
            "runner": env.get("FB_GVSOC_RUNNER"),
            "kit": env.get("GVSOC_KIT_PREFIX"),
        }
        given = {k: v for k, v in options.items() if v is not None}
        unknown = set(given) - set(defaults) - {"work_dir", "timeout"}
        if unknown:
            raise ValueError(f"gvsoc backend: unknown option(s) {', '.join(sorted(unknown))}")
        merged = {**defaults, **given}
        kit = merged.get("kit")
        if kit:  # the kit's layout: PREFIX/{dory,pulp-sdk,toolchain,dory-venv}
            for key, sub in (("dory_dir", "dory"), ("pulp_sdk", "pulp-sdk"), ("toolchain", "toolchain"),
                             ("dory_python", "dory-venv/bin/python")):  # fmt: skip
                if key not in given:
                    merged[key] = str(Path(kit) / sub)
        return cls(isa, **merged)

    @property
    def spec(self) -> str:
        return f"{self.name}:{self.isa}"

    def toolchain_id(self) -> Toolchain:
        """The compiler that builds the applications (identified once; ValueError if it is missing)."""
        if self._toolchain is None:
            self._toolchain = identify(self.toolchain)
        return self._toolchain

    def cache_params(self) -> dict[str, Any]:
        # Commits and compiler, not paths: two checkouts at the same commits share points, two compilers never do.
        prov = self.provenance()
        return {"isa": self.isa, "toolchain": prov["toolchain"]["version"], "profile": prov["toolchain"]["profile"],
                "commits": prov["commits"]}  # fmt: skip

    def provenance(self) -> dict[str, Any]:
        """Commits of DORY, the PULP SDK and GVSOC, and the toolchain: what a measured table records."""
        roots = {"dory": self.dory_dir, "pulp-sdk": self.pulp_sdk}
        if self.kit:
            roots["gvsoc"] = str(Path(self.kit) / "gvsoc")
        commits = {name: git_head(path) for name, path in roots.items() if path}
        if self.dory_dir:
            for sub in ("pulp-nn", "pulp-nn-mixed"):
                found = next((p for p in Path(self.dory_dir).rglob(sub) if (p / ".git").exists()), None)
                if found is not None:
                    commits[sub] = git_head(str(found))
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
        deploy = shutil.which(self.fb_deploy or "fb-deploy")
        if deploy is None:
            raise ValueError(
                f"gvsoc backend: fb-deploy not found ({self.fb_deploy!r}): install it from this "
                "repository (pip install -e packages/fb-deploy) or point --fb-deploy to it"
            )
        if self.runner:
            if not os.access(self.runner, os.X_OK):
                raise ValueError(
                    f"gvsoc backend: runner {self.runner!r} is not an executable script "
                    "(expected RUNNER MODEL_DIR OUT_DIR FLOW, e.g. the GVSOC kit's run_dory_app.sh)"
                )
            self.toolchain_id()
            return
        if not self.dory_dir or not (Path(self.dory_dir) / "network_generate.py").is_file():
            raise ValueError(
                f"gvsoc backend: DORY not found ({self.dory_dir!r} has no network_generate.py): clone "
                "pulp-platform/dory with its submodules and point --dory-dir (or FB_DORY_DIR) to it"
            )
        python = self.dory_python and shutil.which(self.dory_python)
        hint = (
            "DORY needs its own interpreter with numpy<1.24, onnx, mako, ortools: create a venv (pip install "
            "'numpy<1.24' onnx mako ortools) and point --dory-python (or FB_DORY_PYTHON) to its python"
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
                "clone pulp-platform/pulp-sdk and point --pulp-sdk (or FB_PULP_SDK) to it"
            )
        gcc = Path(self.toolchain or "") / "bin" / "riscv32-unknown-elf-gcc"
        if not self.toolchain or not gcc.is_file():
            raise ValueError(
                f"gvsoc backend: PULP RISC-V GCC toolchain not found ({self.toolchain!r} has no "
                "bin/riscv32-unknown-elf-gcc): install the PULP riscv-nn toolchain and set "
                "PULP_RISCV_GCC_TOOLCHAIN (or --toolchain)"
            )
        for tool in ("bash", "make"):
            if shutil.which(tool) is None:
                raise ValueError(f"gvsoc backend: {tool} not found on PATH: install it (e.g. apt-get install {tool})")

    def _run(self, step: str, cmd: list[str], cwd: str | None = None) -> str:
        env = {**os.environ, "PULP_RISCV_GCC_TOOLCHAIN": self.toolchain or ""}
        try:
            proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=self.timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{step} timed out after {self.timeout:.0f} s") from None
        if proc.returncode != 0:
            tail = (proc.stderr.strip() or proc.stdout.strip()).splitlines()[-1:] or [""]
            raise RuntimeError(f"{step} failed (exit {proc.returncode}): {tail[0]}")
        return proc.stdout + proc.stderr

    def _run_with_runner(self, model: Path, out: Path, info: dict[str, Any]) -> int:
        """``RUNNER MODEL OUT FLOW`` (the kit's run_dory_app.sh): cycles of the profiled layer from OUT/layers.json,
        only if every layer's checksum passed."""
        # The simulation's own limit (the kit's RUN_TIMEOUT), below ours so that a hang is reported as one.
        env = {**os.environ, **({"PREFIX": self.kit} if self.kit else {}), "RUN_TIMEOUT": str(int(self.timeout))}
        cmd = [self.runner or "", str(model), str(out), GVSOC_ISAS[self.isa][0]]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=self.timeout + 600)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"GVSOC run timed out after {self.timeout + 600:.0f} s") from None
        (out / "runner.log").write_text(proc.stdout + proc.stderr)
        return cycles_from_layers_json(out / "layers.json", info.get("dory_layer"), proc.returncode, proc.stderr)

    def latency(self, lt: LayerType, b_in: int, b_wt: int | None, b_out: int = 8) -> int:
        point = f"{lt.key}_a{b_in}_w{b_wt or 0}_o{b_out}"
        with tempfile.TemporaryDirectory(prefix="fb-gvsoc-") as tmp:
            root = Path(self.work_dir) / point if self.work_dir else Path(tmp)
            model, app = root / "model", root / "app"
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            deploy = shutil.which(self.fb_deploy or "fb-deploy") or "fb-deploy"
            self._run("fb-deploy layer", deploy_command(deploy, lt.key, b_in, b_wt, b_out, str(model)))
            if self.runner:
                return self._run_with_runner(model, root / "run", json.loads((model / "layer.json").read_text()))
            python, dory = self.dory_python or "python3", self.dory_dir or "."
            self._run("DORY network_generate", dory_command(python, dory, str(model), str(app), self.isa), cwd=dory)
            log = self._run("GVSOC run", run_command(self.pulp_sdk or ".", str(app), self.isa))
            (root / "gvsoc.log").write_text(log)
            info = json.loads((model / "layer.json").read_text()) if (model / "layer.json").is_file() else {}
            return layer_cycles_from_log(log, info.get("dory_layer"), info.get("dory_layer_index"))


class SimulationError(RuntimeError):
    """A wrong result or a hang on the simulator: deterministic, so the sweep does not retry it."""

    retry = False


def cycles_from_layers_json(path: Path, name: str | None, rc: int = 0, stderr: str = "") -> int:
    """Cycles of layer ``name`` (default: the last) from a kit ``layers.json``, if every checksum passed.

    Raises:
        RuntimeError: the run failed (the runner's last error line), a checksum failed, or the layer is missing.
    """
    if not path.is_file():
        tail = [x for x in stderr.strip().splitlines() if x.strip()][-1:] or [f"exit {rc}, no {path.name}"]
        raise RuntimeError(f"GVSOC run failed: {tail[0]}")
    data = json.loads(path.read_text())
    layers = data.get("layers", [])
    bad = [x["name"] for x in layers if x.get("checksum") == "failed"]
    if bad:
        checks = next(x["checks"] for x in layers if x["name"] == bad[0])
        which = ", ".join(k for k, v in checks.items() if v == "failed")
        raise SimulationError(f"checksum failed on GVSOC: {', '.join(bad)} ({which})")
    if not data.get("ok") or data.get("final") is None:
        raise SimulationError(f"GVSOC run did not finish (exit {rc}, no final performance line: a hang or timeout)")
    found = [x for x in layers if name is None or x["name"] == name] or []
    if not found or found[-1].get("cycles") is None:
        raise RuntimeError(f"no cycle count for DORY layer {name!r}; found {', '.join(x['name'] for x in layers)}")
    return int(found[-1]["cycles"])


def git_head(path: str) -> str | None:
    """The commit checked out at ``path`` (None if it is not a git checkout)."""
    try:
        proc = subprocess.run(["git", "-C", path, "rev-parse", "HEAD"], capture_output=True, text=True, timeout=30)
    except OSError:
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None
