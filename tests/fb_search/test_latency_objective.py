"""The expected-latency regularizer: values, gradient against finite differences, errors, and that it steers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from fb_schema import LatencyTable, MissingLatencyError, Precision, Target
from fb_schema.topologies import tinynet
from fb_search import BBOptions, QNet
from fb_search._latency_objective import latency_terms
from fb_search.quant import PRECS, Gates


def _table(topology, drop=None):
    rng = np.random.default_rng(0)
    entries = {}
    for key, lt in topology.layer_types().items():
        for a in PRECS:
            for w in PRECS if lt.configurable else (None,):
                entries[(key, a, w)] = int(rng.integers(100, 1000))
    if drop:
        del entries[drop]
    return LatencyTable(Target("t", "xpulpnn1"), topology.layer_types(), entries)


def _model(variant, table, seed=0):
    topology = tinynet()
    model = QNet(topology, "bb", bb=BBOptions(variant), rngs=nnx.Rngs(seed))
    model.use_latency_objective("latency", latency_terms(topology, table))
    rng = np.random.default_rng(seed)
    for _, gates in nnx.iter_graph(model):
        if isinstance(gates, Gates):
            gates[...] = jnp.asarray(rng.normal(0, 2, gates[...].shape), jnp.float32)
    return model


@pytest.mark.parametrize("variant", ["orig", "locked"])
def test_expected_latency_gradient_matches_finite_differences(variant):
    table = _table(tinynet())
    model = _model(variant, table)
    graphdef, gates, rest = nnx.split(model, Gates, ...)

    def f(g):
        return nnx.merge(graphdef, g, rest).expected_latency()

    grads = jax.grad(f)(gates)
    leaves, treedef = jax.tree.flatten(gates)
    grad_leaves = jax.tree.leaves(grads)
    eps, checked = 1e-2, 0
    for li, leaf in enumerate(leaves):
        for idx in np.ndindex(leaf.shape):

            def shifted(delta, li=li, idx=idx):
                new = [np.array(x, np.float64) for x in leaves]
                new[li][idx] += delta
                return float(f(jax.tree.unflatten(treedef, [jnp.asarray(x, jnp.float32) for x in new])))

            fd = (shifted(eps) - shifted(-eps)) / (2 * eps)
            assert float(grad_leaves[li][idx]) == pytest.approx(fd, rel=2e-2, abs=2e-4)
            checked += 1
    assert checked >= 4


def test_expected_latency_at_deterministic_gates_equals_table_latency():
    topology = tinynet()
    table = _table(topology)
    model = _model("orig", table)
    for _, gates in nnx.iter_graph(model):
        if isinstance(gates, Gates):
            gates[...] = jnp.full(gates[...].shape, 30.0)  # every gate surely on: 8 bits
    total_8b = sum(
        table.latency(l.layer_type.key, p)
        for l in topology.layers
        for p in [Precision(8, 8 if l.layer_type.configurable else None)]
    )
    configurable = sum(table.entries[(l.layer_type.key, 8, 8)] for l in topology.layers if l.layer_type.configurable)
    assert float(model.expected_latency()) == pytest.approx(configurable / total_8b, rel=1e-5)


def test_missing_entry_names_layer_type_and_pair():
    topology = tinynet()
    key = topology.layer("dw1").layer_type.key
    with pytest.raises(MissingLatencyError, match=rf"{key} at \(b_in=4, b_wt=2\)"):
        latency_terms(topology, _table(topology, drop=(key, 4, 2)))


def test_objective_needs_a_table():
    model = QNet(tinynet(), "bb", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="needs a latency table"):
        model.use_latency_objective("latency")
    with pytest.raises(ValueError, match="objective: expected one of"):
        model.use_latency_objective("energy", ())


@pytest.mark.slow
def test_latency_search_lowers_expected_latency(untrained_ckpt, digits, tmp_path):
    """A short search under the latency objective: a large mu must buy expected latency, and provenance says so."""
    import fb_search
    from fb_schema.topologies import digitsnet

    topology = digitsnet()
    # Latency grows with both widths, so the objective pulls every gate down.
    entries = {
        (k, a, w): 100 * (a + (w or 8)) for k, lt in topology.layer_types().items()
        for a in PRECS for w in (PRECS if lt.configurable else (None,))
    }  # fmt: skip
    table = LatencyTable(Target("t", "xpulpnn1"), topology.layer_types(), entries)
    runs = fb_search.sweep(topology, digits, untrained_ckpt, "orig", (0.0, 5.0), 150, 0, tmp_path,
                           objective="latency", table=table)  # fmt: skip
    low, high = (cfg.metrics["expected_latency"] for cfg in runs)
    print(f"expected latency (of 8b/8b): mu=0 {low:.3f}, mu=5 {high:.3f}")
    assert high < low - 0.03  # Adam moves phi by ~lr per step: 150 steps shift the gates visibly
    assert runs[1].provenance["method"] == "latency-bb" and runs[1].provenance["table_sha256"] == table.sha256()
    with pytest.raises(ValueError, match="a latency table is required"):
        fb_search.search(topology, digits, untrained_ckpt, objective="latency", steps=1, out_dir=tmp_path)


def test_a_latency_search_evaluates_with_the_bop_searchs_programs(untrained_ckpt, digits, tmp_path):
    """The latency objective is training state only: once trained, the network is a BOP search's, so its BN
    re-estimation and evaluation reuse those compiled programs, and its checkpoint holds no latency matrix."""
    import fb_search
    from fb_schema.topologies import digitsnet
    from fb_search._checkpoint import load_checkpoint
    from fb_search._train import _eval_step

    topology = digitsnet()
    table = _table(topology)
    fb_search.search(topology, digits, untrained_ckpt, mu=0.1, steps=2, out_dir=tmp_path, sensitivity=False)
    before = _eval_step.cache_info().currsize
    net = fb_search.search(topology, digits, untrained_ckpt, mu=0.5, steps=2, out_dir=tmp_path, sensitivity=False,
                           objective="latency", table=table)  # fmt: skip
    assert _eval_step.cache_info().currsize == before  # no evaluation program of its own
    assert 0 < net.metrics["expected_latency"] <= 1.0 + 1e-6
    state, _ = load_checkpoint(net.provenance["checkpoint"])
    assert "latency_matrix" not in state and "layers" in state
