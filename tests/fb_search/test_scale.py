"""Paper-scale pieces: MobileNetV1/V2 models from the topologies, float and fake-quant ONNX export."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fb_schema.topologies import digitsnet, mobilenetv1, mobilenetv2
from fb_search import QNet, homogeneous, predict
from fb_search.quant import BBQuant, FixedQuant


@pytest.mark.parametrize("topology", [mobilenetv1(0.25, 32, 10), mobilenetv2(0.35, 32, 10)], ids=["mnv1", "mnv2"])
def test_mobilenet_models(topology):
    model = QNet(topology, "bb", rngs=nnx.Rngs(0))
    assert [model.layers[n].lt.key for n, *_ in model.graph] == [layer.layer_type.key for layer in topology.layers]
    logits = predict(QNet(topology, "float", rngs=nnx.Rngs(0)), np.full((2, 32, 32, 3), 0.5, np.float32))
    assert logits.shape == (2, 10) and np.all(np.isfinite(logits))
    for layer in topology.layers:
        if layer.layer_type.configurable:
            fixed = topology.b_in_fixed(layer.name)
            in_q = model.layers[layer.name].in_q
            assert isinstance(in_q, FixedQuant if fixed else BBQuant), layer.name
            if fixed:
                assert in_q.bits == 8
    adds = [layer for layer in topology.layers if layer.op == "add"]
    assert (len(adds) > 0) == (topology.name == "mobilenetv2")
    for add in adds:  # 8-bit residual adds; add outputs feed fixed 8-bit inputs
        q = model.quantizer_of(add.name)
        assert isinstance(q, FixedQuant) and q.bits == 8


def test_onnx_float_and_fake_quant_match_jax():
    ort = pytest.importorskip("onnxruntime")
    import onnx

    from fb_search._onnx import to_onnx_model

    x = np.asarray(jax.random.uniform(jax.random.key(0), (3, 16, 16, 1)))
    for mode, config, tol in (("float", None, 1e-5), ("fixed", homogeneous("digitsnet", 8, 4), 1e-4)):
        model = QNet(digitsnet(), mode, config, fused_kernels=True, rngs=nnx.Rngs(0))
        model.eval()
        want = np.asarray(model(jnp.asarray(x), None))
        proto = to_onnx_model(model)
        onnx.checker.check_model(proto, full_check=True)
        groups = [a.i for n in proto.graph.node if n.op_type == "Conv" for a in n.attribute if a.name == "group"]
        assert sorted(g for g in groups if g > 1) == [16, 32, 64]  # depthwise exported as grouped convs
        sess = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
        got = sess.run(None, {sess.get_inputs()[0].name: x})[0]
        np.testing.assert_allclose(got, want, atol=tol, rtol=tol)
        assert model.layers["dw1"].dw_impl == "auto" and model.layers["pw1"].fast  # training form restored
