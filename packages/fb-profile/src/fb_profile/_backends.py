"""Latency backends: ``pulp-model:<isa>`` (built in), ``gvsoc:<isa>`` (the user's DORY + GVSOC), ``table:<file>``.

A backend turns (layer type, b_in, b_wt) into cycles at a fixed output precision; the sweep adds caching,
processes, retries and the table around it. Target specs are ``<backend>:<argument>``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from fb_profile._constants import ISAS, TOOLCHAINS, Constants, builtin_constants, load_constants
from fb_profile._model import layer_cycles
from fb_schema import LayerType, Target

MODEL_VERSION = "1"
BACKENDS = ("pulp-model", "gvsoc", "table")


@dataclass
class PulpModel:
    """The analytical PULP cluster model for one ISA (see ``_model``)."""

    constants: Constants
    constants_file: str | None = None
    name: str = "pulp-model"
    version: str = MODEL_VERSION
    bits: tuple[int, ...] = (2, 4, 8)

    @property
    def isa(self) -> str:
        return self.constants.isa

    @property
    def spec(self) -> str:
        tc = "" if self.constants.toolchain == "pulp-gcc" else f"@{self.constants.toolchain}"
        return f"{self.name}:{self.isa}{tc}"

    def slug(self) -> str:
        tc = "" if self.constants.toolchain == "pulp-gcc" else f"-{self.constants.toolchain}"
        return f"pulp-{self.isa}{tc}" + ("" if self.constants_file is None else "-calibrated")

    def cache_params(self) -> dict[str, Any]:
        c = self.constants
        params = {"isa": c.isa, **c.free_values(), "l1_budget": c.l1_budget, "l2": c.l2_bytes - c.l2_code_reserve}
        return params if c.toolchain == "pulp-gcc" else {**params, "toolchain": c.toolchain}

    def target(self, b_out: int, allowed_bits: tuple[int, ...]) -> Target:
        c = self.constants
        return Target(self.slug(), c.isa, c.n_cores, 65536, 524288, self.name, self.version, "cycles", b_out,
                      tuple(sorted(allowed_bits)))  # fmt: skip

    def check(self, bits: tuple[int, ...], b_out: int = 8) -> None:
        """Raise a one-line ValueError if the sweep asks for bit widths the model does not know."""
        bad = sorted((set(bits) | {b_out}) - set(self.bits))
        if bad:
            raise ValueError(
                f"{self.spec}: bit width(s) {', '.join(map(str, bad))} not supported; expected a subset of "
                f"{', '.join(map(str, self.bits))}"
            )

    def latency(self, lt: LayerType, b_in: int, b_wt: int | None, b_out: int = 8) -> int:
        for what, bits in (("b_in", b_in), ("b_wt", b_wt), ("b_out", b_out)):
            if bits is not None and bits not in self.bits:
                raise ValueError(f"{self.spec}: {what}={bits} outside the supported bits {self.bits}")
        if lt.configurable != (b_wt is not None):
            raise ValueError(f"{self.spec}: {lt.key}: b_wt must be {'an integer' if lt.configurable else 'None'}")
        return layer_cycles(lt, b_in, b_wt, self.constants, b_out)


def make_backend(target: str | Any, constants: str | os.PathLike | None = None, **options: Any):
    """The backend for a target spec such as ``pulp-model:xpulpv2`` (a backend object is returned as is).

    Raises:
        ValueError: unknown backend or ISA, or a malformed spec (one line, listing what is known).
    """
    if not isinstance(target, str):
        return target
    name, _, arg = target.partition(":")
    if name not in BACKENDS or not arg:
        raise ValueError(
            f"unknown target {target!r}; expected <backend>:<arg> with backend one of {', '.join(BACKENDS)}"
        )
    if name == "pulp-model":  # pulp-model:ISA[@TOOLCHAIN]
        arg, _, toolchain = arg.partition("@")
        if arg not in ISAS:
            raise ValueError(f"unknown ISA {arg!r} in target {target!r}; the pulp-model knows {', '.join(ISAS)}")
        if toolchain and toolchain not in TOOLCHAINS:
            raise ValueError(f"unknown toolchain profile {toolchain!r} in target {target!r}; expected one of "
                             f"{', '.join(TOOLCHAINS)}")  # fmt: skip
        if constants is None:
            return PulpModel(builtin_constants(arg, toolchain or "pulp-gcc"))
        loaded = load_constants(constants, arg)
        if toolchain and loaded.toolchain != toolchain:
            raise ValueError(f"{constants}: toolchain: constants are for {loaded.toolchain}, the target is {toolchain}")
        return PulpModel(loaded, str(constants))
    if name == "gvsoc":
        from fb_profile._gvsoc import GvsocBackend

        return GvsocBackend.from_spec(arg, **options)
    from fb_profile._table_backend import TableBackend

    return TableBackend.from_file(arg)
