"""Topology files (freebits/topology/v1): round trips, one-line errors, rectangular kernels, examples."""

import json
from pathlib import Path

import pytest

from fb_schema import LayerType
from fb_schema.topologies import (
    BUILTIN,
    TOPOLOGY_SCHEMA,
    Topology,
    TopologyLayer,
    get_topology,
    load_topology,
    resolve_topology,
    save_topology,
    tinynet,
    topology_sha256,
    topology_to_json,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin_topologies_round_trip(tmp_path, name):
    net = get_topology(name)
    path = tmp_path / f"{name}.json"
    save_topology(net, path)
    back = load_topology(path)
    assert back == net
    assert [layer.act for layer in back.layers] == [layer.act for layer in net.layers]
    assert topology_sha256(back) == topology_sha256(net)


def test_example_files_are_current():
    from importlib.util import module_from_spec, spec_from_file_location

    spec = spec_from_file_location("example_topologies", EXAMPLES / "topologies.py")
    mod = module_from_spec(spec)
    spec.loader.exec_module(mod)
    for net in (mod.resnet8(), mod.dscnn()):
        on_disk = load_topology(EXAMPLES / f"{net.name}.topology.json")
        assert on_disk == net
    dscnn = load_topology(EXAMPLES / "dscnn.topology.json")
    stem = dscnn.layers[0].layer_type
    assert (stem.kernel, stem.stride, stem.padding, stem.out_hw) == ((10, 4), (2, 2), (4, 1, 5, 1), (25, 5))
    resnet = load_topology(EXAMPLES / "resnet8.topology.json")
    assert [layer.act for layer in resnet.layers if layer.op == "add"] == ["relu"] * 3
    assert resnet.layer("conv5").layer_type.key == "conv2d_32x32x16_o32_k1x1_s2x2_p0.0.0.0_g1"
    assert resnet.input_signed and resnet.input_threshold == 3.0


def test_rectangular_kernel_and_maxpool_layer_types():
    lt = LayerType.conv2d(49, 10, 1, 64, (10, 4), (2, 2), (4, 1, 5, 1))
    assert lt.key == "conv2d_49x10x1_o64_k10x4_s2x2_p4.1.5.1_g1"
    assert LayerType.from_key(lt.key) == lt
    mp = LayerType.maxpool(16, 16, 8, 3, 2, (1, 1, 1, 1))
    assert (mp.out_hw, mp.configurable, mp.macs) == ((8, 8), False, 8 * 8 * 8 * 9)


def _doc():
    return topology_to_json(tinynet())


def _write(tmp_path, doc):
    path = tmp_path / "net.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    "mutate, field, fragment",
    [
        (lambda d: d.update(schema="freebits/topology/v0"), "schema", TOPOLOGY_SCHEMA),
        (lambda d: d["input"].update(shape_hwc=[8, 8]), "input.shape_hwc", "[H, W, C]"),
        (lambda d: d["input"].update(layout="chw"), "input.layout", "nhwc, nchw"),
        (lambda d: d["input"].update(range=[1, 0]), "input.range", "lo < hi"),
        (lambda d: d["layers"][1].update(act="gelu"), "layers[1].act", "relu, relu6, none"),
        (lambda d: d["layers"][1].update(layer_type="conv2d_x"), "layers[1].layer_type", "a key of layer_types"),
        (lambda d: d["layers"][1].update(colour="red"), "layers[1].colour", "no such field"),
        (lambda d: d["layers"][2].update(inputs=["conv0", "nope"]), "layers", "unknown input tensor 'nope'"),
        (lambda d: d["layers"][2].update(bias=True), "layers", "add1: add takes no bias"),
        (lambda d: d.update(num_classes=3), "layers", "num_classes = 3"),
    ],
)
def test_bad_topology_files_give_one_line_errors(tmp_path, expect_schema_error, mutate, field, fragment):
    doc = _doc()
    mutate(doc)
    expect_schema_error(load_topology, _write(tmp_path, doc), field, fragment)


def test_layer_type_key_must_match_parameters(tmp_path, expect_schema_error):
    doc = _doc()
    key = doc["layers"][0]["layer_type"]
    doc["layer_types"][key]["out_ch"] = 9
    expect_schema_error(load_topology, _write(tmp_path, doc), f"layer_types.{key}", "the key derived")


def test_resolve_topology_takes_names_and_paths(tmp_path):
    path = tmp_path / "mine.json"
    net = Topology("mine", (8, 8, 1), 10, tinynet().layers, input_range=(-1.0, 1.0))
    save_topology(net, path)
    assert resolve_topology(str(path)) == net
    assert resolve_topology(str(path), num_classes=10) == net
    assert resolve_topology("tinynet") == tinynet()
    with pytest.raises(ValueError, match="takes no width"):
        resolve_topology(str(path), width=0.5)
    with pytest.raises(ValueError, match="or give a topology file path"):
        resolve_topology("resnet8")


def test_post_add_activation_and_bias_are_kept():
    layers = list(tinynet().layers)
    layers[2] = TopologyLayer("add1", layers[2].layer_type, layers[2].inputs, "relu")
    layers[0] = TopologyLayer("conv0", layers[0].layer_type, layers[0].inputs, "relu", bias=True)
    net = Topology("t", (8, 8, 1), 10, tuple(layers))
    doc = topology_to_json(net)
    assert doc["layers"][2]["act"] == "relu" and doc["layers"][0]["bias"] is True
    assert doc["layers"][-1]["bias"] is True  # the classifier always has one
