"""ONNX import into fb-search: the float checkpoint computes the ONNX network (onnxruntime) in both layouts,
fb-search's own export-onnx round-trips, and user data is validated with one-line errors."""

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from fb_schema.topologies import digitsnet, load_topology
from fb_search import QNet, import_onnx_model, load_npz_data, predict, topology_of
from fb_search._api import _float_model
from fb_search._cli import main as search_cli

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("which", ["dscnn_nhwc", "dscnn_folded", "maxpool"])
def test_imported_float_checkpoint_equals_onnxruntime(onnx_nets, tmp_path, which):
    model = {
        "dscnn_nhwc": lambda: onnx_nets.dscnn(nhwc=True),
        "dscnn_folded": lambda: onnx_nets.dscnn(explicit_bn=False),
        "maxpool": onnx_nets.maxpool_net,
    }[which]()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    topo, ckpt = import_onnx_model(path, tmp_path / "out", (-2.0, 2.0))
    assert load_topology(tmp_path / "out" / "topology.json") == topo == topology_of(ckpt)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim[1:]]
    x = np.random.default_rng(0).normal(0, 2.0, (6, *dims)).astype(np.float32)  # beyond the range: not clipped
    ref = onnx_nets.run_onnxruntime(model, x)
    x_nhwc = x if topo.input_layout == "nhwc" else x.transpose(0, 2, 3, 1)
    got = predict(_float_model(topo, ckpt), np.ascontiguousarray(x_nhwc))
    assert np.abs(got - ref).max() <= 1e-4 * np.abs(ref).max()


def test_fb_search_float_export_round_trips(tmp_path):
    from flax import nnx

    from fb_search import save_checkpoint
    from fb_search._onnx import export_onnx

    model = QNet(digitsnet(), "float", rngs=nnx.Rngs(0))
    x = np.random.default_rng(1).uniform(0, 1, (4, 16, 16, 1)).astype(np.float32)
    path = export_onnx(model, tmp_path / "float.onnx")
    topo, ckpt = import_onnx_model(path, tmp_path / "imp", (0.0, 1.0))
    assert list(topo.layer_types()) == list(digitsnet().layer_types())
    assert topo.input_layout == "nhwc"
    assert [layer.act for layer in topo.layers] == [layer.act for layer in digitsnet().layers]
    save_checkpoint(model, tmp_path / "orig", {"stage": "float"})
    np.testing.assert_allclose(predict(_float_model(topo, ckpt), x), predict(model, x), rtol=1e-5, atol=1e-5)


def _npz(tmp_path, **over):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.uniform(-1, 1, (40, 1, 49, 10)).astype(np.float32),
        "y_train": rng.integers(0, 12, 40),
        "x_val": rng.uniform(-1, 1, (4, 1, 49, 10)).astype(np.float32),
        "y_val": rng.integers(0, 12, 4),
    }
    arrays.update(over)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    path = tmp_path / "d.npz"
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    "over, fragment",
    [
        ({"y_val": None}, "missing array(s) y_val"),
        ({"y_train": np.zeros(40, np.float32)}, "y_train: expected 40 integer labels"),
        ({"x_val": np.zeros((4, 1, 49, 9), np.float32)}, "x_val: images (49, 9, 1) differ"),
        ({"y_train": np.full(40, -1)}, "y_train: labels in [-1, -1]"),
    ],
)
def test_bad_user_data_is_a_one_line_error(tmp_path, over, fragment):
    with pytest.raises(ValueError) as err:
        load_npz_data(_npz(tmp_path, **over), "nchw")
    assert fragment in str(err.value) and str(err.value).startswith(str(tmp_path))


def test_data_outside_the_input_range_and_of_the_wrong_shape_are_refused(tmp_path):
    path = _npz(tmp_path)
    topo = str(Path(__file__).resolve().parents[2] / "examples" / "dscnn.topology.json")
    runner = CliRunner()
    ok = runner.invoke(search_cli, ["train-float", "--network", topo, "--data", str(path), "--layout", "nchw",
                                    "--dry-run", "--input-range", "-1,1"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "input range [-1, 1] (signed 8-bit input)" in ok.output
    low = runner.invoke(search_cli, ["train-float", "--network", topo, "--data", str(path), "--layout", "nchw",
                                     "--dry-run", "--input-range", "0,1"])  # fmt: skip
    assert low.exit_code != 0 and "outside dscnn's input range [0, 1]" in low.output
    wrong = runner.invoke(search_cli, ["train-float", "--network", topo, "--data", str(path), "--dry-run"])
    assert wrong.exit_code != 0 and "do not fit dscnn (49, 10, 1)" in wrong.output  # NCHW read as NHWC
