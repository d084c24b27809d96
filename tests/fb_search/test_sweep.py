"""The fast search paths against the straightforward ones: the train loop against plain calls of the single
jitted step, the layer sensitivity against forcing the gates in the model, one predict call per pair."""

import jax
import numpy as np
import pytest
from flax import nnx

import fb_search
from fb_schema import LatencyTable, Target
from fb_schema.topologies import resolve_topology, tinynet
from fb_search._api import BITS_PHI, SENSITIVITY_IMAGES, _load
from fb_search._latency_objective import latency_terms
from fb_search._model import BBOptions, QNet
from fb_search._train import OptSpec, _train_step, _train_step_at, cross_entropy, predict, pure, train
from fb_search.quant import PRECS
from fb_search.quant._bayesian_bits import TEST_THRESHOLD, p_zero

MUS = (0.0, 0.01, 0.03, 0.1)  # the pipeline fixture's (conftest.py)

SPEC = OptSpec(kind="adam", lr=3e-3, schedule="cosine", gate_lr=1e-2, batch_size=32)


def _stepwise(model, data, spec, steps, seed, mu):
    """Train with one call of the single jitted step per batch (gate key ``fold_in(key(seed), step)``)."""
    model.train()
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    params, rest = pure(params), pure(rest)
    tx, step = _train_step(graphdef, spec, steps, True)
    state = (params, rest, tx.init(params))
    key = jax.random.key(seed)
    for s, (x, y) in enumerate(data.batches(steps, spec.batch_size, seed)):
        *state, _ = step(*state, x, y, jax.random.fold_in(key, s), np.float32(mu))
    nnx.update(model, *state[:2])


def test_train_loop_equals_single_steps():
    data = fb_search.load_digits_data(resolution=8)
    chunked, single = (QNet(tinynet(), "bb", rngs=nnx.Rngs(0)) for _ in range(2))
    train(chunked, data, SPEC, 7, 3, mu=0.1, search=True, log_every=3)  # metrics read at steps 3, 6 and 7
    _stepwise(single, data, SPEC, 7, 3, 0.1)
    for (path, a), (_, b) in zip(nnx.to_flat_state(nnx.state(chunked)), nnx.to_flat_state(nnx.state(single))):
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]), err_msg=str(path))


def _eager_sensitivity(model, data):
    """The reference: force each layer's gates in the model, one predict per (layer, pair)."""
    x, y = data.val_subset(SENSITIVITY_IMAGES)
    base = float(cross_entropy(predict(model, x), y))
    out = {}
    for name, _ in model.mac_ratio:
        layer = model.layers[name]
        w_phi, a_phi = getattr(layer.w_q, "phi", None), getattr(layer.in_q, "phi", None)
        if w_phi is None:
            continue
        saved = [np.asarray(w_phi[...])] + ([np.asarray(a_phi[...])] if a_phi is not None else [])
        pairs = {}
        for b_in in (2, 4, 8) if a_phi is not None else (layer.in_q.bits,):
            for b_wt in (2, 4, 8):
                if a_phi is w_phi and b_in != b_wt:
                    continue
                w_phi[...] = np.asarray(BITS_PHI[b_wt], np.float32)
                if a_phi is not None and a_phi is not w_phi:
                    a_phi[...] = np.asarray(BITS_PHI[b_in], np.float32)
                pairs[f"{b_in},{b_wt}"] = float(cross_entropy(predict(model, x), y)) - base
        w_phi[...] = saved[0]
        if a_phi is not None and a_phi is not w_phi:
            a_phi[...] = saved[1]
        out[name] = pairs
    return out


@pytest.mark.parametrize("variant", ["orig", "locked"])
def test_compiled_sensitivity_equals_eager(variant, digits, untrained_ckpt):
    model = QNet(resolve_topology("digitsnet", resolution=16), "bb", bb=BBOptions(variant), rngs=nnx.Rngs(0))
    _load(untrained_ckpt, model)
    rng = np.random.default_rng(1)
    for _, m in nnx.iter_modules(model):
        if hasattr(m, "phi"):  # gates between the forcings' values, so every forcing changes the network
            m.phi[...] = rng.uniform(-3, 3, m.phi.shape).astype(np.float32)
    fast = fb_search.layer_sensitivity(model, digits)
    slow = _eager_sensitivity(model, digits)
    assert list(fast) == list(slow) and all(list(fast[k]) == list(slow[k]) for k in slow)
    np.testing.assert_array_equal([v for p in fast.values() for v in p.values()],
                                  [v for p in slow.values() for v in p.values()])  # fmt: skip
    assert max(abs(v) for p in fast.values() for v in p.values()) > 1e-3  # the forcings do change the output


MARGIN = 0.15  # |P(z = 0) - 0.34| below this: a gate the last bits of rounding can flip (see the test)


def _decided(checkpoint) -> dict[str, bool]:
    """Per searched layer: are all its gates at least MARGIN from the test threshold?"""
    state, _ = fb_search.load_checkpoint(checkpoint)
    out = {}
    for name, layer in state["layers"].items():
        phis = [layer[q]["phi"] for q in ("w_q", "in_q") if "phi" in layer.get(q, {})]
        if phis:
            p0 = [np.asarray(p_zero(np.asarray(phi), 0.5)) for phi in phis]
            out[name] = all(np.all(np.abs(p - TEST_THRESHOLD) > MARGIN) for p in p0)
    return out


@pytest.mark.slow
def test_stacked_sweep_finds_the_sequential_configs(pipeline, digits, tmp_path):
    """The stacked (vmap) mu sweep against the sequential one of the pipeline fixture, on digits.

    Stacking changes the rounding of the last bits (batched kernels), and 300 steps of stochastic gates amplify
    that: a gate that ends near its threshold can end on the other side (measured: orig mu=0.03, dw3's 8-bit
    input gate at P(z=0) 0.373 sequential, 0.249 stacked). So every layer whose gates all end at least MARGIN
    from the threshold must get the sequential precision (the largest shift of P(z=0) measured between the two
    was 0.12), and most layers must be decided so.
    """
    sequential = pipeline["sweeps"]["orig"]
    stacked = fb_search.sweep("digitsnet", digits, pipeline["ckpt"], "orig", MUS, None, 0, tmp_path, stacked="vmap")
    assert [c.provenance["mu"] for c in stacked] == list(MUS)
    compared = total = 0
    for seq, stk in zip(sequential, stacked):
        decided = _decided(seq.provenance["checkpoint"])
        seq_layers, stk_layers = ({c.name: (c.b_in, c.b_wt) for c in cfg.layers} for cfg in (seq, stk))
        for name, sure in decided.items():
            total += 1
            if sure:
                compared += 1
                assert stk_layers[name] == seq_layers[name], f"mu={seq.provenance['mu']}: layer {name}"
    # measured: 20 of the 28 searched layers of this sweep are decided by the margin
    assert compared >= 0.6 * total, f"only {compared} of {total} layers decided by a margin of {MARGIN}"


def test_mus_and_latency_tables_share_one_compilation():
    """Runs differing in mu and in the latency table (another target's) reuse one compiled train step."""
    data = fb_search.load_digits_data(resolution=8)
    topology, rng = tinynet(), np.random.default_rng(0)
    graphdefs = []
    for target, mu in (("a", 0.5), ("a", 2.0), ("b", 0.5)):
        entries = {(k, a, w): int(rng.integers(100, 1000)) for k, lt in topology.layer_types().items()
                   for a in PRECS for w in (PRECS if lt.configurable else (None,))}  # fmt: skip
        table = LatencyTable(Target(target, "xpulpnn1"), topology.layer_types(), entries)
        model = QNet(topology, "bb", rngs=nnx.Rngs(0))
        model.use_latency_objective("latency", latency_terms(topology, table))
        graphdefs.append(nnx.graphdef(model))
        train(model, data, SPEC, 3, 0, mu=mu, search=True)
    assert graphdefs[0] == graphdefs[1] == graphdefs[2]
    model.train()  # the mode train() compiles in
    _, step = _train_step_at(nnx.split(model, nnx.Param, ...)[0], SPEC, 3, True)
    assert step._cache_size() == 1  # one trace and compilation for all three runs
