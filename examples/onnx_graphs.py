"""Float ONNX classifiers written with ``onnx.helper`` the way exporters write them (no torch needed), and a
data set to go with them.

``python examples/onnx_graphs.py resnet8|dscnn OUT_DIR`` writes ``OUT_DIR/<net>.onnx``, ``OUT_DIR/<net>_data.npz``
(NCHW inputs in [-3, 3], labelled with the network's own decisions) and ``OUT_DIR/<net>_x.npy`` (16 inputs).
The tests build their graphs with the same functions.

``resnet8`` (MLPerf Tiny, NCHW, convs with BN folded into a bias, post-add ReLU, 1x1 strided shortcuts,
GlobalAveragePool, Flatten, Gemm, a trailing Softmax), ``dscnn`` (MLPerf Tiny KWS, optionally NHWC with
tf2onnx-style boundary Transposes, an explicit BatchNormalization, a Pad before the 10x4 stride-2 stem,
ReduceMean over H, W, Reshape, MatMul + Add). Weights are random but scaled so activations stay O(1).
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


class Graph:
    """Appends nodes and initializers; tensor names are generated."""

    def __init__(self, seed: int = 0):
        self.nodes, self.inits, self.n = [], [], 0
        self.rng = np.random.default_rng(seed)

    def name(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, value, prefix: str = "c") -> str:
        name = self.name(prefix)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k, stride=1, pads=None, group=1, bias=True, act="Relu"):
        kh, kw = (k, k) if isinstance(k, int) else k
        fan_in = kh * kw * cin // group
        w = self.rng.normal(0, np.sqrt(2.0 / fan_in), (cout, cin // group, kh, kw)).astype(np.float32)
        ins = [x, self.const(w, "w")]
        if bias:
            ins.append(self.const(self.rng.normal(0, 0.1, cout).astype(np.float32), "b"))
        pads = [kh // 2, kw // 2, kh // 2, kw // 2] if pads is None else pads
        y = self.node("Conv", ins, kernel_shape=[kh, kw], strides=[stride, stride], pads=pads, group=group)
        return self.node(act, [y]) if act else y

    def bn(self, x, ch):
        gamma = self.rng.uniform(0.5, 1.5, ch).astype(np.float32)
        beta = self.rng.normal(0, 0.1, ch).astype(np.float32)
        mean = self.rng.normal(0, 0.1, ch).astype(np.float32)
        var = self.rng.uniform(0.5, 2.0, ch).astype(np.float32)
        ins = [x] + [self.const(v, "bn") for v in (gamma, beta, mean, var)]
        return self.node("BatchNormalization", ins, epsilon=1e-3)

    def model(self, x_name, x_shape, y, opset=17, name="net"):
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="tests")
        model.ir_version = 8
        return model


def resnet8(seed: int = 0, softmax: bool = False):
    """MLPerf Tiny ResNet-8 on 32x32x3 (NCHW), 10 classes, TorchScript-style (folded BN, Relu, Add)."""
    g = Graph(seed)
    x = g.conv("input", 3, 16, 3)
    y = g.conv(x, 16, 16, 3)
    y = g.conv(y, 16, 16, 3, act=None)
    x = g.node("Relu", [g.node("Add", [x, y])])
    for cin, cout in ((16, 32), (32, 64)):
        y = g.conv(x, cin, cout, 3, 2)
        y = g.conv(y, cout, cout, 3, act=None)
        s = g.conv(x, cin, cout, 1, 2, act=None)
        x = g.node("Relu", [g.node("Add", [s, y])])
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    w = g.rng.normal(0, np.sqrt(1.0 / 64), (10, 64)).astype(np.float32)
    y = g.node("Gemm", [x, g.const(w, "fc_w"), g.const(g.rng.normal(0, 0.1, 10).astype(np.float32))], transB=1)
    if softmax:
        y = g.node("Softmax", [y], axis=1)
    return g.model("input", ["N", 3, 32, 32], y, name="resnet8")


def dscnn(seed: int = 0, nhwc: bool = False, explicit_bn: bool = True):
    """MLPerf Tiny DS-CNN on 49x10x1, 12 classes: Pad + 10x4 stride-2 conv (+ BatchNormalization), four
    depthwise-separable blocks, ReduceMean over H, W, Reshape, MatMul + Add. ``nhwc``: an NHWC input with a
    Transpose to NCHW (tf2onnx style)."""
    g = Graph(seed)
    x = "input"
    if nhwc:
        x = g.node("Transpose", [x], perm=[0, 3, 1, 2])
    x = g.node("Pad", [x, g.const(np.array([0, 0, 4, 1, 0, 0, 5, 1], np.int64), "pads")], mode="constant")
    if explicit_bn:
        x = g.node("Relu", [g.bn(g.conv(x, 1, 64, (10, 4), 2, pads=[0, 0, 0, 0], bias=False, act=None), 64)])
    else:
        x = g.conv(x, 1, 64, (10, 4), 2, pads=[0, 0, 0, 0])
    for _ in range(4):
        x = g.conv(x, 64, 64, 3, group=64)
        x = g.conv(x, 64, 64, 1)
    x = g.node("ReduceMean", [x, g.const(np.array([2, 3], np.int64), "axes")], keepdims=1)
    x = g.node("Reshape", [x, g.const(np.array([-1, 64], np.int64), "shape")])
    w = g.rng.normal(0, np.sqrt(1.0 / 64), (64, 12)).astype(np.float32)
    y = g.node("Add", [g.node("MatMul", [x, g.const(w, "fc_w")]), g.const(g.rng.normal(0, 0.1, 12).astype(np.float32))])
    shape = ["N", 49, 10, 1] if nhwc else ["N", 1, 49, 10]
    return g.model("input", shape, y, opset=18, name="dscnn")


def maxpool_net(seed: int = 0):
    """conv (bias) -> Clip(0, 6) -> MaxPool 3x3/2 pad 1 -> conv -> GlobalAveragePool -> Flatten -> Gemm."""
    g = Graph(seed)
    x = g.conv("input", 3, 16, 3, act=None)
    x = g.node("Clip", [x, g.const(np.float32(0.0)), g.const(np.float32(6.0))])
    x = g.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    x = g.conv(x, 16, 16, 3)
    x = g.node("Flatten", [g.node("GlobalAveragePool", [x])], axis=1)
    w = g.rng.normal(0, 0.25, (10, 16)).astype(np.float32)
    y = g.node("Gemm", [x, g.const(w, "fc_w"), g.const(np.zeros(10, np.float32))], transB=1)
    return g.model("input", ["N", 3, 16, 16], y, name="mpnet")


def run_onnxruntime(model, x: np.ndarray) -> np.ndarray:
    """The model's output on ``x`` (float32), with onnxruntime."""
    import onnxruntime as ort

    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x.astype(np.float32)})[0]


SHAPES = {"resnet8": (3, 32, 32), "dscnn": (1, 49, 10)}


def write_example(name: str, out_dir) -> None:
    """The ONNX model, a labelled NCHW data set (``.npz``) and 16 inputs (``.npy``) of ``name``."""
    from pathlib import Path

    import onnx

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = resnet8() if name == "resnet8" else dscnn()
    onnx.save(model, str(out / f"{name}.onnx"))
    rng = np.random.default_rng(0)
    x = np.clip(rng.normal(0.0, 1.0, (320, *SHAPES[name])), -3, 3).astype(np.float32)
    y = run_onnxruntime(model, x).argmax(1)
    np.savez(out / f"{name}_data.npz", x_train=x[:256], y_train=y[:256], x_val=x[256:], y_val=y[256:])
    np.save(out / f"{name}_x.npy", x[:16])
    print(f"wrote {out / name}.onnx, {name}_data.npz (256 + 64 images), {name}_x.npy")


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 3 or sys.argv[1] not in SHAPES:
        sys.exit("usage: python examples/onnx_graphs.py resnet8|dscnn OUT_DIR")
    write_example(sys.argv[1], sys.argv[2])
