"""Expected-latency regularizer: the search sees the target's latency table instead of (or besides) BOPs.

A layer's input and weight gates give a distribution over its (b_in, b_wt) pairs; the expected network latency
``sum_layers sum_pairs P(pair) * LD[t, pair]`` is differentiable in the gate parameters. It is normalized by the
8b/8b network latency, so mu means the same across networks and targets. The original variant takes the input and
weight precisions independent (P = pi_in(a) * pi_w(w)); the locked variant, whose two quantizers share one set of
gates, puts all mass on the diagonal (P(b, b) = pi(b)). QuantLab's ``BBLatencyRegularizer`` uses the same
product of marginals (quantlib's Bayesian Bits code, ``algorithms/bb``); Free Bits itself searched with BOPs
(arXiv 2307.02894). The matrices are model state (a :class:`LatencyMatrix`), not structure, so searches against
different targets' tables share one compiled train step.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from flax import nnx

from fb_schema import LatencyTable, MissingLatencyError, Precision
from fb_schema.topologies import Topology
from fb_search.quant import PRECS, BBQuant, grid_levels, precision_probs

OBJECTIVES = ("bops", "latency", "both")


def latency_terms(topology: Topology, table: LatencyTable) -> tuple[tuple[str, tuple[tuple[float, ...], ...]], ...]:
    """Per configurable layer, its PRECS x PRECS latency matrix divided by the 8b/8b network latency.

    Static nested tuples, so a model can hold them as plain attributes. A layer type or pair missing from the
    table is an error naming both.

    Example:
        >>> from fb_schema import Target
        >>> from fb_schema.topologies import tinynet
        >>> net = tinynet()
        >>> entries = {(k, a, w): 10 * (a + (w or 0)) for k, t in net.layer_types().items()
        ...            for a in PRECS for w in (PRECS if t.configurable else (None,))}
        >>> terms = latency_terms(net, LatencyTable(Target("t", "xpulpv2"), net.layer_types(), entries))
        >>> [name for name, _ in terms], round(terms[0][1][2][2], 4)
        (['conv0', 'dw1', 'fc'], 0.25)
    """

    def lat(key: str, p: Precision) -> int:
        if not table.has(key, p):
            raise MissingLatencyError(key, p.b_in, p.b_wt, f"latency table {table.target.name}")
        return table.latency(key, p)

    total_8b = sum(
        lat(layer.layer_type.key, Precision(8, 8 if layer.layer_type.configurable else None))
        for layer in topology.layers
    )
    terms = []
    for layer in topology.layers:
        if not layer.layer_type.configurable:
            continue
        key = layer.layer_type.key
        matrix = tuple(tuple(lat(key, Precision(a, w)) / total_8b for w in PRECS) for a in PRECS)
        terms.append((layer.name, matrix))
    return tuple(terms)


class LatencyMatrix(nnx.Variable):
    """The stacked ``(layers, PRECS, PRECS)`` normalized latencies of :func:`latency_terms` (never trained)."""


def latency_state(terms) -> tuple[tuple[str, ...], LatencyMatrix]:
    """(layer names, their latency matrices as one :class:`LatencyMatrix`) of :func:`latency_terms`' output."""
    return tuple(name for name, _ in terms), LatencyMatrix(jnp.asarray([m for _, m in terms], jnp.float32))


def _marginal(q) -> tuple[jnp.ndarray, object | None]:
    """(distribution over PRECS, the gates it comes from or None) of one quantizer."""
    if isinstance(q, BBQuant):
        return precision_probs(q.phi[...], q.temperature), q.phi
    levels = np.asarray([grid_levels(b) for b in PRECS])  # q's bit width is state, traced in the train step
    return (jnp.asarray(levels) == q.levels[...]).astype(jnp.float32), None


def expected_latency(layers, names: tuple[str, ...], matrices: jnp.ndarray) -> jnp.ndarray:
    """Expected (normalized) latency of the configurable layers ``names`` (latencies ``matrices[i]``) under the
    current gate distributions."""
    total = jnp.zeros(())
    for name, lat in zip(names, matrices):
        layer = layers[name]
        p_in, g_in = _marginal(layer.in_q)
        p_w, g_w = _marginal(layer.w_q)
        if g_in is not None and g_in is g_w:  # locked: one gate set, equal precisions
            total = total + jnp.sum(p_w * jnp.diagonal(lat))
        else:
            total = total + p_in @ lat @ p_w
    return total
