"""Models from topologies: depthwise forms, locking, the mu behaviour, frozen groups, config checks."""

import dataclasses
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fb_schema import LayerConfig, NetConfig, Precision
from fb_schema.topologies import digitsnet, tinynet
from fb_search import (
    BBOptions,
    OptSpec,
    QConv,
    QNet,
    check_config,
    load_checkpoint,
    load_digits_data,
    load_into,
    predict,
    save_checkpoint,
    tensor_signed,
    train,
)
from fb_search.layers import conv_nhwc
from fb_search.quant import BBQuant, FixedQuant


def test_depthwise_taps_equals_grouped():
    lt = digitsnet().layer("dw2").layer_type  # stride 2
    x = jax.random.normal(jax.random.key(0), (2, *lt.out_hw[:0], lt.in_h, lt.in_w, lt.in_ch))
    w = jax.random.normal(jax.random.key(1), lt.weight_shape_hwio)
    np.testing.assert_allclose(conv_nhwc(x, w, lt, "taps"), conv_nhwc(x, w, lt, "grouped"), atol=1e-5)


def test_model_layer_types_and_signedness():
    topo = digitsnet()
    model = QNet(topo, "bb", rngs=nnx.Rngs(0))
    assert [model.layers[n].lt.key for n, *_ in model.graph] == [layer.layer_type.key for layer in topo.layers]
    signed = tensor_signed(topo)
    assert not signed["pw2"] and signed["pw3"] and signed["add3"] and signed["pool"]
    assert model.quantizer_of("pool").signed and not model.quantizer_of("pw1").signed
    # fixed inputs and the first layer's weights are not searched
    assert isinstance(model.layers["conv0"].w_q, FixedQuant) and isinstance(model.layers["conv0"].in_q, FixedQuant)
    assert model.quantizer_of("pw2") is model.layers["dw3"].in_q  # the conv consumer owns a shared tensor
    assert isinstance(model.quantizer_of("pw3"), FixedQuant) and model.quantizer_of("pw3").bits == 8


@pytest.mark.parametrize("variant", ["orig", "locked"])
def test_locked_reads_equal_bits(variant):
    model = QNet(digitsnet(), "bb", bb=BBOptions(variant=variant), rngs=nnx.Rngs(0))
    rng = np.random.default_rng(0)
    searched = [n for n, _ in model.mac_ratio if isinstance(model.layers[n].in_q, BBQuant)]
    for name in searched:  # independent random gates on every variable
        for q in (model.layers[name].w_q, model.layers[name].in_q):
            q.phi[...] = jnp.asarray(rng.choice([-3.0, 3.0], 2), jnp.float32)
    precs = model.precisions()
    same = [precs[n].b_in == precs[n].b_wt for n in searched]
    if variant == "locked":
        assert all(same) and all(model.layers[n].in_q.phi is model.layers[n].w_q.phi for n in searched)
    else:
        assert not all(same)
    assert precs["conv0"] == Precision(8, 8) and precs["add3"] == Precision(8, None)


@pytest.fixture(scope="module")
def digits8():
    return load_digits_data(resolution=8)


def test_mu_zero_keeps_8_bits_large_mu_lowers_bits(digits8):
    spec = OptSpec(kind="adam", lr=1e-3, schedule="constant", gate_lr=5e-2, batch_size=32)
    results = {}
    for mu in (0.0, 10.0):
        model = QNet(tinynet(), "bb", bb=BBOptions(variant="locked"), rngs=nnx.Rngs(0))
        start = float(model.expected_bits())
        train(model, digits8, spec, 60, 0, mu=mu, search=True)
        results[mu] = (float(model.expected_bits()), model.precisions())
    assert all(p.b_in == 8 and p.b_wt in (8, None) for p in results[0.0][1].values())
    assert results[10.0][0] < start - 2
    assert results[10.0][1]["dw1"] == Precision(2, 2) and results[10.0][1]["fc"] == Precision(2, 2)


def test_frozen_groups_stay_frozen(digits8):
    model = QNet(tinynet(), "bb", rngs=nnx.Rngs(0))
    kernel = np.asarray(model.layers["dw1"].kernel[...]).copy()
    phi = np.asarray(model.layers["dw1"].w_q.phi[...]).copy()
    spec = OptSpec(kind="sgd", lr=0.1, momentum=0.9, schedule="constant", gate_lr=5e-2, frozen=("weights",))
    train(model, digits8, spec, 5, 0, mu=1.0, search=True)
    np.testing.assert_array_equal(model.layers["dw1"].kernel[...], kernel)
    assert not np.array_equal(model.layers["dw1"].w_q.phi[...], phi)


def test_checkpoint_round_trip(tmp_path, digits8):
    model = QNet(tinynet(), "bb", bb=BBOptions(variant="locked"), rngs=nnx.Rngs(1))
    model.layers["dw1"].w_q.phi[...] = jnp.asarray([3.0, -3.0])
    path = save_checkpoint(model, tmp_path / "ck", {"network": "tinynet"})
    state, meta = load_checkpoint(path)
    other = QNet(tinynet(), "bb", bb=BBOptions(variant="locked"), rngs=nnx.Rngs(2))
    assert load_into(other, state) == []
    np.testing.assert_array_equal(predict(model, digits8.val_x[:8]), predict(other, digits8.val_x[:8]))
    assert other.precisions()["dw1"] == Precision(4, 4) and meta == {"network": "tinynet"}


def _config(topo, **change):
    cfg = NetConfig.homogeneous(topo, 4, 4)
    layers = tuple(dataclasses.replace(layer, **change.get(layer.name, {})) for layer in cfg.layers)
    return dataclasses.replace(cfg, layers=layers)


def test_bad_configs_one_line_errors():
    topo = digitsnet()
    check_config(_config(topo), topo)
    cases = {
        "b_wt = 3, expected one of [2, 4, 8]": _config(topo, pw1={"b_wt": 3}),
        "b_in is fixed at 8, got 4": _config(topo, conv0={"b_in": 4}),
        "does not match the model 'digitsnet'": NetConfig.homogeneous(tinynet(), 8, 8),
    }
    for message, cfg in cases.items():
        with pytest.raises(ValueError, match=re.escape(message)) as info:
            QNet(topo, "fixed", cfg, rngs=nnx.Rngs(0))
        assert "\n" not in str(info.value)
    wrong_key = _config(topo)
    wrong_key = dataclasses.replace(
        wrong_key, layers=(LayerConfig("conv0", "conv2d_x", 8, 8, True), *wrong_key.layers[1:])
    )
    with pytest.raises(ValueError, match="layer conv0: layer_type conv2d_x"):
        check_config(wrong_key, topo)
    with pytest.raises(ValueError, match="mode 'fixed': a NetConfig is required"):
        QNet(topo, "fixed", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="variant: expected one of orig, locked"):
        QNet(topo, "bb", bb=BBOptions(variant="shared"), rngs=nnx.Rngs(0))


def test_user_block():
    lt = digitsnet().layer("conv0").layer_type
    conv = QConv(lt, FixedQuant(8, False, False, 1.0), BBQuant(True, True), rngs=nnx.Rngs(0))
    y = conv(jnp.ones((2, 16, 16, 1)) * 0.5, jax.random.key(0))
    assert y.shape == (2, 16, 16, 16) and float(y.min()) >= 0 and float(y.max()) <= 6
