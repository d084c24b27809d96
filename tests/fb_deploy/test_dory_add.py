"""The residual add as DORY runs it: the twin and the checker follow DORY's rules (``fb_deploy._dory_add``).

The fixture is main f1924e9's 8b digitsnet and its GVSOC log: DORY computed 314472 for the add where the goldens
say 457263 (and then 8128 / 6449 for the pool and the classifier).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from fb_deploy import IntegerNetwork, check_model, errors, export_dory, parse_run_log, verify
from fb_deploy._dory_add import add_reading
from fb_deploy._dory_graph import load_model_dir, parse
from fb_deploy._verify import dory_checksum

OLD = Path(__file__).resolve().parents[1] / "fixtures" / "gvsoc" / "digitsnet-8b-f1924e9"


def test_twin_reproduces_gvsoc_on_the_old_export():
    report = verify(OLD / "model", n_random=2)
    sums = {c["layer"]: (c["golden"], c["twin"]) for c in report.checksums}
    gvsoc = {x.name: x for x in parse_run_log((OLD / "gvsoc_run.log").read_text()).layers}
    assert sums["Addition7"] == (457263, 314472)
    for name, (golden, twin) in sums.items():  # the twin computes what GVSOC computed, layer by layer
        run = gvsoc[name]
        assert twin == (run.computed if run.checksum == "failed" else golden), name
    assert not report.ok and report.golden_layers_equal == 7
    assert any("residual-add-order" in e and "Addition7" in e for e in report.check_errors)


def test_checker_names_the_add_and_what_dory_reads():
    found = errors(check_model(OLD / "model"))
    assert {f.rule for f in found} == {"residual-add-order"}
    assert all(f.node.startswith("Addition7") for f in found)
    assert "reads tensor 42 as uint8 but it is int8" in found[0].message


def test_reading_of_the_old_add():
    onnx_path, config, _ = load_model_dir(OLD / "model")
    graph = parse(onnx.load(onnx_path), config)
    add = graph.layers[7]
    reading = add_reading(graph, add)
    assert reading.tensors == ("42", "30")  # pw3's output (the layer before the add) is the kernel's pIn1
    assert reading.read == ((8, False), (8, True)) and reading.stored == ((8, True), (8, False))
    assert reading.params == ("in2", "in1")  # ONNX input 0 = 30 < 42: DORY does not swap; pIn1 gets inmul2


def test_fixed_export_of_the_same_network(tmp_path):
    net = IntegerNetwork.load(OLD / "model" / "integer_network.json")
    out = export_dory(net, tmp_path / "model")
    assert not errors(check_model(out))
    report = verify(out, n_random=2)
    assert report.ok and report.golden_layers_equal == 10
    assert all(c["golden"] == c["twin"] for c in report.checksums)
    add = next(c for c in report.checksums if c["layer"] == "Addition7")
    assert add["golden"] == 457263  # the same network, now computed as the goldens say


def test_unequal_add_precisions_are_refused(tmp_path):
    """An add of u4 + i8 (what the 4b export gave): DORY's DMA loads half of the second input."""
    model = tmp_path / "m"
    shutil.copytree(OLD / "model", model)
    m = onnx.load(model / "model.onnx")
    clips = [n for n in m.graph.node if n.op_type == "Clip"]
    pw2 = next(n for n in clips if n.output[0] == "30")  # the skip tensor: make it 4-bit
    for a in pw2.attribute:
        if a.name == "out_bits":
            a.i = 4
        if a.name == "max":
            a.f = 15.0
    onnx.save(m, model / "model.onnx")
    found = [f for f in errors(check_model(model)) if f.rule == "residual-add-precision"]
    assert found and found[0].node.startswith("Addition7")
    assert "inputs of 4 and 8 bits" in found[0].message


@pytest.mark.parametrize(
    "values,bits,expected",
    [
        ([1, 2, 255], 8, 258),
        ([-1, 0], 8, 255),
        ([1, 2], 4, 1 + 2 * 16),
        ([3, 1, 0, 2], 2, 3 + 4 + 128),
        ([-1], 32, 1020),
    ],
)
def test_dory_checksum(values, bits, expected):
    assert dory_checksum(np.array(values), bits) == expected


def test_one_layer_add_reads_two_tensors(tmp_path):
    """An add of one tensor with itself hangs DORY's application (no branch tensor is saved): the profiling
    network adds two identity copies instead, and the export refuses the self-add."""
    from fb_deploy import single_layer_network
    from fb_deploy._errors import IntegerizationError
    from fb_schema import LayerType

    net = single_layer_network(LayerType.add(8, 8, 16), 8, None)
    assert [layer.name for layer in net.layers] == ["pre", "pre2", "layer"]
    assert net.layers[-1].inputs == ("pre", "pre2")
    out = export_dory(net, tmp_path / "m")
    assert not errors(check_model(out)) and verify(out, n_random=2).ok
    net.layers[-1].inputs = ("pre2", "pre2")
    with pytest.raises(IntegerizationError, match="adds tensor .* to itself; DORY's network.c saves no branch tensor"):
        export_dory(net, tmp_path / "self")
