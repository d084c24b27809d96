"""Shared fixtures: the MobileNetV1-0.75@224 tables of the three ISAs, and an ONNX writer for topologies."""

from __future__ import annotations

import pytest

from fb_profile import sweep
from fb_schema.topologies import mobilenetv1

ISAS = ("xpulpv2", "xpulpnn1", "xpulpnn2")


@pytest.fixture(scope="session")
def mnv1():
    return mobilenetv1(0.75, 224)


@pytest.fixture(scope="session")
def mnv1_tables(mnv1):
    """{isa: LatencyTable} of MobileNetV1-0.75@224 with the shipped constants (no cache)."""
    return {isa: sweep(mnv1, f"pulp-model:{isa}", cache_dir=False, progress=False) for isa in ISAS}


@pytest.fixture(scope="session")
def onnx_of():
    """The ``topology_to_onnx`` helper (test modules cannot import conftest under importlib mode)."""
    return topology_to_onnx


def topology_to_onnx(topology, batch="N"):
    """An NCHW float ONNX model with the layers of ``topology`` (Conv/Relu, Add, GlobalAveragePool, Gemm)."""
    import numpy as np
    from onnx import TensorProto, helper

    h, w, c = topology.input_shape
    nodes, inits = [], []
    for layer in topology.layers:
        lt = layer.layer_type
        ins = list(layer.inputs)
        out = layer.name
        if lt.op in ("conv2d", "depthwise_conv2d"):
            wshape = (lt.out_ch, lt.in_ch // lt.groups, *lt.kernel)
            inits.append(helper.make_tensor(f"{out}_w", TensorProto.FLOAT, wshape, np.zeros(wshape).ravel()))
            nodes.append(
                helper.make_node(
                    "Conv",
                    [ins[0], f"{out}_w"],
                    [f"{out}_pre"],
                    name=out,
                    kernel_shape=list(lt.kernel),
                    strides=list(lt.stride),
                    pads=list(lt.padding),
                    group=lt.groups,
                )  # fmt: skip
            )
            nodes.append(helper.make_node("Relu", [f"{out}_pre"], [out], name=f"{out}_relu"))
        elif lt.op == "add":
            nodes.append(helper.make_node("Add", ins, [out], name=out))
        elif lt.op == "avgpool":
            nodes.append(helper.make_node("GlobalAveragePool", ins, [f"{out}_4d"], name=out))
            nodes.append(helper.make_node("Flatten", [f"{out}_4d"], [out], name=f"{out}_flat"))
        elif lt.op == "linear":
            wshape = (lt.out_ch, lt.in_ch)
            inits.append(helper.make_tensor(f"{out}_w", TensorProto.FLOAT, wshape, np.zeros(wshape).ravel()))
            nodes.append(helper.make_node("Gemm", [ins[0], f"{out}_w"], [out], name=out, transB=1))
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, c, h, w])
    y = helper.make_tensor_value_info(topology.output, TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, topology.name, [x], [y], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
