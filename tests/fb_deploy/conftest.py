"""Shared fixtures: fixture paths, the golden artifact and small random-weight integer networks."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from conftest import GOLDEN

from fb_deploy import export_dory, integerize, random_quantized_network
from fb_schema import NetConfig, Precision, QuantizedNetwork
from fb_schema.topologies import digitsnet, mobilenetv1, mobilenetv2

# Cycles through sub-byte pairs so every network mixes 2/4/8-bit inputs and weights.
MIXED = [(2, 4), (4, 2), (8, 4), (4, 8), (2, 2), (8, 2), (4, 4)]


def mixed_config(topology) -> NetConfig:
    """Mixed 2/4/8-bit config; the classifier stays at (4, 4): 10 classes do not pack at 2 bits."""
    cfg = NetConfig.homogeneous(topology, 8, 8)
    bits = itertools.cycle(MIXED)
    chosen = {
        layer.name: Precision(4, 4) if layer.name == "fc" else Precision(*next(bits))
        for layer in cfg.layers
        if layer.b_wt is not None and not layer.b_in_fixed
    }
    return cfg.with_precisions(chosen)


@pytest.fixture(scope="session")
def mixed_config_of():
    """The mixed-precision config builder, for tests that build their own networks."""
    return mixed_config


TOPOLOGIES = {
    "digitsnet": lambda: digitsnet(),
    "mobilenetv1": lambda: mobilenetv1(0.25, 32, num_classes=10),
    "mobilenetv2": lambda: mobilenetv2(0.25, 32, num_classes=10),
}


@pytest.fixture(scope="session")
def golden_qn() -> QuantizedNetwork:
    return QuantizedNetwork.load(GOLDEN)


@pytest.fixture(scope="session")
def golden_dir(tmp_path_factory, golden_qn) -> Path:
    return export_dory(integerize(golden_qn), tmp_path_factory.mktemp("golden") / "model")


@pytest.fixture(scope="session", params=list(TOPOLOGIES))
def mixed_export(request, tmp_path_factory) -> tuple[str, Path]:
    """A random-weight mixed-precision network of each topology, integerized and exported."""
    topo = TOPOLOGIES[request.param]()
    tmp = tmp_path_factory.mktemp(request.param)
    qn = random_quantized_network(topo, mixed_config(topo), 1, tmp / "net.json")
    return request.param, export_dory(integerize(qn), tmp / "model")
