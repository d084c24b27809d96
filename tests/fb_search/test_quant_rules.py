"""Quantization rules: the default reproduces each mode's choice; a user's rules and quantizer classes are honoured."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fb_schema import QuantizedNetwork
from fb_schema.topologies import INPUT, digitsnet, tinynet
from fb_search import BBOptions, QNet, QuantRule, QuantRules, QuantTensor, export_quantized_network, homogeneous
from fb_search.quant import BBQuant, FixedQuant, FloatQuant, TQTQuant


def _quantizers(model: QNet, topo) -> list[tuple[str, str, str, int | None, bool]]:
    """(layer, attribute, class, bits, fixed precision?) of every weight and tensor quantizer."""
    out = []
    for tensor, layer, attr in model.tensor_q:
        q = model.quantizer_of(tensor)
        fixed = tensor == INPUT or attr == "out_q" or topo.b_in_fixed(layer)
        out.append((layer, attr, type(q).__name__, q.bits, fixed))
    for name, _ in model.mac_ratio:
        q = model.layers[name].w_q
        out.append((name, "w_q", type(q).__name__, q.bits, topo.layer(name).inputs == (INPUT,)))
    return out


# What QNet chose before the rules existed, by (mode, fixed precision?): Bayesian Bits searches all but the
# first layer's weights, inputs fixed by the topology and tensors read only by adds/pools; the network input
# is FixedQuant(8) except in float mode.
EXPECTED_CLASS = {
    ("float", False): "FloatQuant",
    ("float", True): "FloatQuant",
    ("fixed", False): "FixedQuant",
    ("fixed", True): "FixedQuant",
    ("tqt", False): "TQTQuant",
    ("tqt", True): "TQTQuant",
    ("bb", False): "BBQuant",
    ("bb", True): "FixedQuant",
}


@pytest.mark.parametrize("mode", ["float", "fixed", "tqt", "bb"])
def test_default_rules_reproduce_each_mode(mode):
    topo = digitsnet()
    config = homogeneous(topo, 4, 2) if mode in ("fixed", "tqt") else None
    model = QNet(topo, mode, config, rngs=nnx.Rngs(0))
    explicit = QNet(topo, mode, config, rules=QuantRules.default(mode), rngs=nnx.Rngs(0))
    assert nnx.graphdef(model) == nnx.graphdef(explicit)
    found = _quantizers(model, topo)
    assert len(found) == 10 + 8  # the input and 9 layer outputs (not the logits), 8 conv/linear kernels
    for layer, attr, cls, bits, fixed in found:
        if layer == "conv0" and attr == "in_q":  # the network input
            assert (cls, bits) == (("FloatQuant", None) if mode == "float" else ("FixedQuant", 8))
            continue
        assert cls == EXPECTED_CLASS[mode, fixed], (layer, attr)
        if config is not None and attr != "out_q":
            want = config.layer(layer).b_wt if attr == "w_q" else config.layer(layer).b_in
            assert bits == want, (layer, attr)
    if config is not None:  # read only by the add: at the precision of the add's other input (DORY's adder)
        assert model.quantizer_of("pw3").bits == 4 and model.quantizer_of("add3").bits == 8


def test_default_locked_rules_share_the_weight_gates():
    model = QNet(tinynet(), "bb", bb=BBOptions(variant="locked"), rngs=nnx.Rngs(0))
    for name, _ in model.mac_ratio:
        layer = model.layers[name]
        if isinstance(layer.in_q, BBQuant):
            assert layer.in_q.phi is layer.w_q.phi


def test_user_rules_tqt_weights_fixed_activations(tmp_path):
    topo, config = digitsnet(), homogeneous("digitsnet", 4, 2)
    rules = QuantRules((QuantRule("tqt", weights=True), QuantRule("fixed")))
    model = QNet(topo, "tqt", config, rules=rules, rngs=nnx.Rngs(0))
    for layer, attr, cls, _, _ in _quantizers(model, topo):
        assert cls == ("TQTQuant" if attr == "w_q" else "FixedQuant"), (layer, attr)
    # only the weights have a learned threshold, and the model still exports its grids
    assert {str(path[-1]) for path, _ in nnx.to_flat_state(nnx.state(model, nnx.Param))} >= {"log_t", "kernel"}
    assert all(path[-2] == "w_q" for path, _ in nnx.to_flat_state(nnx.state(model)) if path[-1] == "log_t")
    x = np.asarray(jax.random.uniform(jax.random.key(0), (2, *topo.input_shape)))
    path = export_quantized_network(model, topo, config, x, tmp_path / "n.json")
    assert QuantizedNetwork.load(path).tensors["pw1"]["bits"] == 4


class Pow2Quant(FixedQuant):
    """A user quantizer: a fixed grid whose threshold is rounded up to a power of two."""

    def threshold(self, x):
        return jnp.exp2(jnp.ceil(jnp.log2(super().threshold(x))))


def test_user_quantizer_class_by_layer():
    rules = QuantRules(
        (
            QuantRule(lambda t: Pow2Quant(t.bits, t.signed, t.is_weight, t.threshold), layers="pw.*", weights=True),
            QuantRule("fixed"),
        )
    )
    topo = digitsnet()
    model = QNet(topo, "fixed", homogeneous(topo, 8, 8), rules=rules, rngs=nnx.Rngs(0))
    kinds = {name: type(model.layers[name].w_q) for name, _ in model.mac_ratio}
    assert kinds == {n: Pow2Quant if n.startswith("pw") else FixedQuant for n in kinds}
    w = model.layers["pw1"].kernel[...]
    eps = model.layers["pw1"].w_q.scale(w)
    np.testing.assert_array_equal(np.log2(eps * 128), np.round(np.log2(eps * 128)))  # power-of-two thresholds
    assert np.all(np.asarray(model.layers["pw1"].w_q(w)) / eps % 1 == 0)


def test_rule_errors():
    with pytest.raises(ValueError, match="QuantRule.quantizer: expected one of float, fixed, bb, tqt"):
        QuantRule("int8")
    rules = QuantRules((QuantRule("fixed", weights=True),))
    with pytest.raises(ValueError, match="no rule matches the input activation of layer 'dw1'"):
        QNet(digitsnet(), "fixed", homogeneous("digitsnet", 8, 8), rules=rules, rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="bb: with rules, give the Bayesian Bits options as rules.bb"):
        QNet(tinynet(), "bb", bb=BBOptions(variant="locked"), rules=QuantRules.default("bb"), rngs=nnx.Rngs(0))


def test_rule_matching():
    spec = QuantTensor("pw2", bits=4, fixed=False, signed=False, is_weight=False)
    assert QuantRule("fixed", layers="pw.*", weights=False, fixed=False).matches(spec)
    assert not QuantRule("fixed", layers="pw").matches(spec)
    assert not QuantRule("fixed", weights=True).matches(spec)
    assert not QuantRule("fixed", fixed=True).matches(spec)
    assert isinstance(QuantRules.default("float").quantizer(spec), FloatQuant)
    assert isinstance(QuantRules.default("tqt").quantizer(spec), TQTQuant)
