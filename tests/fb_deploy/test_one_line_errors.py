"""Bad model directories, integer networks and artifacts give one-line errors naming the file, never tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from conftest import GOLDEN
from onnx import helper

from fb_deploy import IntegerNetwork, export_dory, integerize
from fb_deploy._cli import main
from fb_schema import QuantizedNetwork, SchemaError


def invoke(*args) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def one_line_error(res, *fragments: str) -> str:
    """The command failed with exit code 1 and exactly one line ``Error: ...`` containing every fragment."""
    crash = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    assert crash is None, f"traceback: {type(crash).__name__}: {crash}"
    lines = res.output.strip().splitlines()
    assert res.exit_code == 1 and len(lines) == 1 and lines[0].startswith("Error: "), res.output
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


def check_fails(res, rule: str) -> None:
    """``check`` printed its findings, including an error of ``rule``, and exited 1 (no traceback)."""
    crash = res.exception if res.exception is not None and not isinstance(res.exception, SystemExit) else None
    assert crash is None, f"traceback: {type(crash).__name__}: {crash}"
    assert res.exit_code == 1 and f"error: [{rule}]" in res.output, res.output


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    return export_dory(integerize(QuantizedNetwork.load(GOLDEN)), tmp_path_factory.mktemp("golden") / "model")


def copy_of(model: Path, tmp_path: Path) -> Path:
    out = tmp_path / "m"
    shutil.copytree(model, out)
    return out


def edit_onnx(d: Path, edit) -> Path:
    m = onnx.load(d / "model.onnx")
    edit(m)
    onnx.save(m, d / "model.onnx")
    return d


def _renumber(m: onnx.ModelProto) -> None:
    names: dict[str, str] = {}
    for node in m.graph.node:
        for j, o in enumerate(node.output):
            names[o] = node.output[j] = str(len(names) + 1)
    for node in m.graph.node:
        node.input[:] = [names.get(t, t) for t in node.input]
    for o in m.graph.output:
        o.name = names.get(o.name, o.name)


def remove_node(op: str):
    """Drop the last ``op`` node and wire its consumers to its data input."""

    def edit(m):
        i = max(k for k, n in enumerate(m.graph.node) if n.op_type == op)
        node = m.graph.node[i]
        for other in m.graph.node:
            other.input[:] = [node.input[0] if t == node.output[0] else t for t in other.input]
        for o in m.graph.output:
            o.name = node.input[0] if o.name == node.output[0] else o.name
        del m.graph.node[i]
        _renumber(m)

    return edit


def insert_flatten_after_first(op: str):
    def edit(m):
        nodes = list(m.graph.node)
        at = next(k for k, n in enumerate(nodes) if n.op_type == op)
        t = nodes[at].output[0]
        new = helper.make_node("Flatten", [t], [t + "f"], axis=1)
        for n in nodes:
            n.input[:] = [new.output[0] if x == t else x for x in n.input]
        nodes.insert(at + 1, new)
        del m.graph.node[:]
        m.graph.node.extend(nodes)
        _renumber(m)

    return edit


# -- IntegerNetwork.load ------------------------------------------------------------------------------------------


def test_integer_network_without_its_npz_is_a_schema_error(model, tmp_path):
    shutil.copy(model / "integer_network.json", tmp_path / "int.json")
    with pytest.raises(SchemaError, match=r"int\.npz: <file>: a readable \.npz archive"):
        IntegerNetwork.load(tmp_path / "int.json")
    res = invoke("export", tmp_path / "int.json", "-o", tmp_path / "out")
    one_line_error(res, "int.npz")


def test_integer_network_with_an_incomplete_npz_is_a_schema_error(model, tmp_path):
    shutil.copy(model / "integer_network.json", tmp_path / "int.json")
    arrays = dict(np.load(model / "integer_network.npz"))
    del arrays["conv0.mul"]
    np.savez(tmp_path / "int.npz", **arrays)
    with pytest.raises(SchemaError, match=r"int\.json: <network>: .*conv0\.mul"):
        IntegerNetwork.load(tmp_path / "int.json")


def test_integer_network_npz_with_string_array(model, tmp_path):
    shutil.copy(model / "integer_network.json", tmp_path / "int.json")
    arrays = dict(np.load(model / "integer_network.npz"))
    arrays["conv0.mul"] = np.array(["a"] * arrays["conv0.mul"].size)
    np.savez(tmp_path / "int.npz", **arrays)
    one_line_error(invoke("export", tmp_path / "int.json", "-o", tmp_path / "out"), "int.npz: conv0.mul", "integer")


# -- check / verify on broken model directories -------------------------------------------------------------------


@pytest.mark.parametrize("op", ["Gemm", "Conv"])
def test_verify_model_with_a_removed_node(model, tmp_path, op):
    d = edit_onnx(copy_of(model, tmp_path), remove_node(op))
    one_line_error(invoke("verify", d), "model.onnx")


@pytest.mark.parametrize("after", ["Conv", "Clip"])
def test_check_and_verify_model_with_an_inserted_flatten(model, tmp_path, after):
    d = edit_onnx(copy_of(model, tmp_path), insert_flatten_after_first(after))
    check_fails(invoke("check", d), "dropped-op")
    one_line_error(invoke("verify", d), "[dropped-op]", "Flatten")


def _config(d: Path, **fields) -> Path:
    config = json.loads((d / "config.json").read_text())
    config.update(fields)
    (d / "config.json").write_text(json.dumps(config))
    return d


@pytest.mark.parametrize("command", ["check", "verify"])
def test_non_integer_n_inputs(model, tmp_path, command):
    d = _config(copy_of(model, tmp_path), n_inputs="x")
    one_line_error(invoke(command, d), "config.json: n_inputs: a positive integer, got 'x'")


def test_garbage_golden_file(model, tmp_path):
    d = copy_of(model, tmp_path)
    (d / "out_layer1.txt").write_text("# header\ngarbage, not numbers\n")
    check_fails(invoke("check", d), "golden-values")
    one_line_error(invoke("verify", d), "out_layer1.txt", "line 2", "integers expected")


def test_truncated_input_txt(model, tmp_path):
    d = copy_of(model, tmp_path)
    text = (d / "input.txt").read_text()
    (d / "input.txt").write_text(text[: len(text) // 2].rsplit("\n", 1)[0] + "\n")
    check_fails(invoke("check", d), "golden-values")
    one_line_error(invoke("verify", d), "input.txt")


@pytest.mark.parametrize("command,target", [("check", "."), ("verify", "."), ("check", "model.onnx")])
def test_malformed_config_json_names_the_file(model, tmp_path, command, target):
    d = copy_of(model, tmp_path)
    (d / "config.json").write_text('{"BNRelu_bits": 32,')
    one_line_error(invoke(command, d / target), "config.json", "valid JSON")


# -- artifacts whose npz holds strings or objects -----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["str", "object"])
@pytest.mark.parametrize("command", ["integerize", "export"])
def test_artifact_npz_with_string_or_object_arrays(tmp_path, kind, command):
    shutil.copy(GOLDEN, tmp_path / "net.json")
    arrays = dict(np.load(GOLDEN.with_suffix(".npz")))
    g = arrays["conv0.bn.gamma"]
    arrays["conv0.bn.gamma"] = np.array(["a"] * g.size) if kind == "str" else np.array([{}] * g.size, dtype=object)
    np.savez(tmp_path / "net.npz", **arrays)
    res = invoke(command, tmp_path / "net.json", "-o", tmp_path / "out.json")
    one_line_error(res, "net.json: nodes[0].bn.gamma: a numeric npz array 'conv0.bn.gamma'")
