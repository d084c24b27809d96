"""Which compiler built the measured code: the toolchain profile that names a measured table's target.

The same DORY application runs at very different speeds depending on the compiler: PULP GCC (the PULP SDK's
``riscv32-unknown-elf-gcc``, GCC 7.1 with the Xpulp extensions) emits hardware loops (``lp.setup``) and
post-increment loads; a stock RISC-V GCC emits only what the ``__builtin_pulp_*`` builtins spell out. The GVSOC kit
used by this project compiles with Debian's GCC 12 behind a ``riscv32-unknown-elf-gcc`` wrapper and a
``pulp_shim.h`` header that maps the builtins to ``.insn`` words. So a table's target name carries the profile
(``gvsoc-xpulpv2-kit-gcc12`` vs ``gvsoc-xpulpv2-pulp-gcc``) and tables of different toolchains never mix silently.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

PROFILES = ("pulp-gcc", "kit-gcc12")
DEFAULT_PROFILE = "pulp-gcc"


@dataclass(frozen=True)
class Toolchain:
    """A compiler as identified from its files and ``--version``."""

    profile: str  # "pulp-gcc", "kit-gcc12", or "gcc<major>" for any other GCC
    version: str  # the first line of ``gcc --version``
    path: str

    def to_json(self) -> dict[str, str]:
        return {"profile": self.profile, "version": self.version, "path": self.path}


def classify(version_line: str, has_shim: bool) -> str:
    """The profile of a compiler from the first line of its ``--version`` and whether the kit's shim is present.

    Example:
        >>> classify("riscv64-unknown-elf-gcc () 12.2.0", True)
        'kit-gcc12'
        >>> classify("riscv32-unknown-elf-gcc (GCC) 7.1.1 20170622", False)
        'pulp-gcc'
    """
    m = re.search(r"(\d+)\.\d+(\.\d+)?", version_line)
    major = m.group(1) if m else "unknown"
    if has_shim:
        return f"kit-gcc{major}"
    if "riscv32-unknown-elf-gcc" in version_line or "pulp" in version_line.lower():
        return "pulp-gcc"
    return f"gcc{major}"


def identify(toolchain_dir: str | None) -> Toolchain:
    """Identify the toolchain under ``toolchain_dir`` (the directory holding ``bin/riscv32-unknown-elf-gcc``).

    Raises:
        ValueError: no compiler there, or it does not run (one line naming the path).
    """
    gcc = Path(toolchain_dir or "") / "bin" / "riscv32-unknown-elf-gcc"
    if not toolchain_dir or not gcc.is_file():
        raise ValueError(f"toolchain: {gcc} not found; point --toolchain (or PULP_RISCV_GCC_TOOLCHAIN) to it")
    try:
        proc = subprocess.run([str(gcc), "--version"], capture_output=True, text=True, timeout=60)
    except OSError as exc:
        raise ValueError(f"toolchain: {gcc} does not run ({exc.strerror})") from None
    first = (proc.stdout.strip().splitlines() or [""])[0]
    if proc.returncode != 0 or not first:
        raise ValueError(f"toolchain: {gcc} --version failed (exit {proc.returncode})")
    has_shim = (Path(toolchain_dir) / "include" / "pulp_shim.h").is_file()
    return Toolchain(classify(first, has_shim), first, str(gcc))
