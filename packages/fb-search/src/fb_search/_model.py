"""A quantized network built from an ``fb_schema`` topology, in one of four modes.

* ``float``: no quantization at all (the input neither; an imported network computes its own float function);
  activation thresholds can be calibrated (99.9th percentile) after training;
* ``bb``: Bayesian Bits search (``variant`` ``orig`` or ``locked``); fixed inputs (the image, tensors produced by
  residual adds) stay at 8 bits, and so do the first layer's weights;
* ``fixed``: every tensor at the precision of a NetConfig, thresholds ``max|w|`` / calibrated (used to evaluate a
  configuration);
* ``tqt``: like ``fixed`` but with TQT's learned thresholds (fine-tuning).

Each tensor is quantized once, at the ``b_in`` of its first conv/linear consumer (whose ``in_q`` it is); a
tensor read only by adds/pools is quantized by its producer's ``out_q``, at 8 bits, or in ``fixed``/``tqt`` mode at
the bits of the add's other input (DORY's add needs both inputs at one precision). A tensor is signed iff its
producer has no ReLU and it is not a sum/average of unsigned tensors. A tensor read by a max pool shares the
pool's output quantizer (max commutes with quantization). The input is quantized at 8 bits over the topology's
``input_range`` (signed symmetric when it reaches below 0). Locked variant (Free Bits, arXiv
2307.02894): a layer's input-activation quantizer shares the ``phi`` variable of its weight quantizer; a tensor
read by several convs is locked to the first one only (QuantLab's behaviour), and fixed inputs are not locked.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fb_schema import ADDER_BITS, DEFAULT_BITS, LayerConfig, NetConfig, Precision, max_abs
from fb_schema import grid as fb_grid
from fb_schema.topologies import INPUT, Topology
from fb_search._latency_objective import OBJECTIVES, expected_latency, latency_state
from fb_search.layers import QAdd, QConv, QLinear, QMaxPool, QPool
from fb_search.quant import VARIANTS, BBOptions, BBQuant, FixedQuant, FloatQuant, Quantizer, QuantRules, QuantTensor

MODES = ("float", "bb", "fixed", "tqt")
FIXED_BITS = 8


def tensor_signed(topology: Topology) -> dict[str, bool]:
    """Signedness of every tensor: no ReLU and not a sum/average of unsigned tensors."""
    signed = {INPUT: topology.input_signed}
    for layer in topology.layers:
        if layer.act in ("relu", "relu6"):
            signed[layer.name] = False
        elif layer.op in ("add", "avgpool", "maxpool"):
            signed[layer.name] = any(signed[t] for t in layer.inputs)
        else:
            signed[layer.name] = True
    return signed


def tensor_owners(topology: Topology) -> dict[str, list[str]]:
    """Configurable consumers of every tensor, in network order."""
    owners: dict[str, list[str]] = {INPUT: []}
    for layer in topology.layers:
        owners[layer.name] = []
    for layer in topology.layers:
        if layer.layer_type.configurable:
            owners[layer.inputs[0]].append(layer.name)
    return owners


def maxpool_sources(topology: Topology) -> dict[str, str]:
    """Tensors read by a max pool -> that pool (they share its quantizer); such a tensor has no other reader."""
    out = {}
    for layer in topology.layers:
        if layer.op == "maxpool":
            src = layer.inputs[0]
            if src == INPUT or len(topology.consumers(src)) != 1:
                raise ValueError(f"{topology.name}: {layer.name}: a max pool must be the only reader of a layer output")
            out[src] = layer.name
    return out


def adder_partner_bits(topology: Topology, tensor: str, owners: dict[str, list[str]], cfg: dict) -> int:
    """Bits of a tensor read only by adds/pools: those of the other input of the add it feeds, if that one is set
    by a conv consumer, else 8. DORY's add kernel needs both inputs at one precision (it copies the second input
    with the first one's byte length), so the fake-quant model quantizes them alike."""
    for layer in topology.layers:
        if layer.op == "add" and tensor in layer.inputs:
            for other in layer.inputs:
                if other != tensor and owners.get(other):
                    return cfg[owners[other][0]].b_in
    return FIXED_BITS


def check_config(config: NetConfig, topology: Topology, allowed_bits=DEFAULT_BITS) -> None:
    """Raise ValueError (one line) unless ``config`` describes ``topology`` with bits in ``allowed_bits``."""
    where = f"NetConfig of {config.network!r}"
    if config.network != topology.name:
        raise ValueError(f"{where}: network does not match the model {topology.name!r}")
    names = [layer.name for layer in topology.layers]
    if [layer.name for layer in config.layers] != names:
        raise ValueError(f"{where}: layers {[c.name for c in config.layers]} do not match the model's {names}")
    for layer, cfg in zip(topology.layers, config.layers):
        if cfg.layer_type != layer.layer_type.key:
            raise ValueError(
                f"{where}: layer {layer.name}: layer_type {cfg.layer_type} != model {layer.layer_type.key}"
            )
        for field in ("b_in", "b_wt"):
            bits = getattr(cfg, field)
            if bits is not None and bits not in allowed_bits:
                raise ValueError(f"{where}: layer {layer.name}: {field} = {bits}, expected one of {list(allowed_bits)}")
        if topology.b_in_fixed(layer.name) and cfg.b_in != FIXED_BITS and layer.layer_type.configurable:
            raise ValueError(f"{where}: layer {layer.name}: b_in is fixed at {FIXED_BITS}, got {cfg.b_in}")


def _rules_for(mode: str, config: NetConfig | None, bb: BBOptions | None, rules: QuantRules | None) -> QuantRules:
    """Check QNet's arguments; the rules to build with."""
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {', '.join(MODES)}, got {mode!r}")
    if (mode in ("fixed", "tqt")) != (config is not None):
        raise ValueError(f"mode {mode!r}: a NetConfig is {'required' if config is None else 'not accepted'}")
    if rules is None:
        rules = QuantRules.default(mode, bb)
    elif bb is not None and bb != rules.bb:
        raise ValueError("bb: with rules, give the Bayesian Bits options as rules.bb")
    if rules.bb.variant not in VARIANTS:
        raise ValueError(f"variant: expected one of {', '.join(VARIANTS)}, got {rules.bb.variant!r}")
    return rules


def _block(layer, rules: QuantRules, cfg: dict, conv: dict, rngs: nnx.Rngs) -> nnx.Module:
    """The module of one layer; a conv/linear gets its weight quantizer here, its input quantizer later."""
    lt = layer.layer_type
    if lt.op == "add":
        return QAdd(lt, act=layer.act)
    if lt.op == "maxpool":
        return QMaxPool(lt)
    if lt.op not in ("conv2d", "depthwise_conv2d", "linear"):
        return QPool(lt, layer.act)
    bits = cfg[layer.name].b_wt if cfg else FIXED_BITS
    first = layer.inputs == (INPUT,)  # the first layer's weights stay at their configured/8 bits, never searched
    spec = QuantTensor(layer.name, bits, first, True, True, np.ones((lt.out_ch,), np.float32))
    w_q = rules.quantizer(spec)
    if lt.op == "linear":
        return QLinear(lt, None, w_q, layer.act, rngs=rngs)
    return QConv(lt, None, w_q, layer.act, rngs=rngs, use_bias=layer.bias, **conv)


def _input_quantizer(topology: Topology, mode: str) -> Quantizer:
    """The 8-bit input over the topology's range, never trained; float mode computes on it unchanged."""
    t_in = float(topology.input_threshold)
    if mode != "float":
        return FixedQuant(FIXED_BITS, topology.input_signed, False, t_in)
    q = FloatQuant(topology.input_signed, False, t_in)
    q.calibrate_skip = True
    return q


def _activation_quantizer(
    topology: Topology, tensor: str, rules: QuantRules, cfg: dict, layers: dict, signed: bool, owners: dict
) -> Quantizer:
    """The quantizer of a layer output: at its first conv/linear reader's ``b_in`` (locked variant: sharing
    that reader's weight gates), or, read only by adds/pools, at the precision the add needs."""
    users = owners[tensor]
    if not users:
        bits = adder_partner_bits(topology, tensor, owners, cfg) if cfg else FIXED_BITS
        return rules.quantizer(QuantTensor(tensor, bits, True, signed, False))
    owner = users[0]
    fixed = topology.b_in_fixed(owner)
    bits = cfg[owner].b_in if cfg else FIXED_BITS
    lock = rules.bb.variant == "locked" and not fixed
    phi = getattr(layers[owner].w_q, "phi", None) if lock else None
    return rules.quantizer(QuantTensor(owner, bits, fixed, signed, False, 6.0, phi))


def _attach_activation_quantizers(
    topology: Topology, mode: str, rules: QuantRules, cfg: dict, layers: dict
) -> tuple[tuple[str, str, str], ...]:
    """Give every tensor its quantizer (a reader's ``in_q`` or the producer's ``out_q``); returns the
    ``(tensor, module, attribute)`` table of where each tensor's quantizer lives."""
    signed, owners = tensor_signed(topology), tensor_owners(topology)
    pooled = maxpool_sources(topology)
    tensor_q = []
    for tensor in (INPUT, *(layer.name for layer in topology.layers if layer.name != topology.output)):
        if tensor in pooled:
            continue  # quantized by its max pool's quantizer (below)
        if tensor == INPUT:
            q = _input_quantizer(topology, mode)
        else:
            q = _activation_quantizer(topology, tensor, rules, cfg, layers, signed[tensor], owners)
        users = owners[tensor]
        if users:
            for user in users:
                layers[user].in_q = nnx.data(q)
            tensor_q.append((tensor, users[0], "in_q"))
        else:
            layers[tensor].out_q = nnx.data(q)
            tensor_q.append((tensor, tensor, "out_q"))
    for tensor, pool in reversed(pooled.items()):  # chains of pools resolve from the last one
        owner = next(entry for entry in tensor_q if entry[0] == pool)
        tensor_q.append((tensor, owner[1], owner[2]))
    return tuple(tensor_q)


class QNet(nnx.Module):
    """A quantized network from a topology (see the module docstring for ``mode``).

    Args:
      topology: an ``fb_schema.topologies`` network.
      mode: ``float``, ``bb``, ``fixed`` or ``tqt``.
      config: the NetConfig giving the precisions (``fixed`` and ``tqt`` only).
      bb: Bayesian Bits options (``bb`` only; with ``rules``, give them as ``rules.bb``).
      dw_impl: depthwise implementation, ``auto`` (``taps`` on CPU, ``grouped`` on GPU/TPU), ``taps`` or
        ``grouped``.
      compute_dtype: ``float32`` or ``bfloat16`` conv operands (float32 accumulation, BatchNorm and parameters).
      fused_kernels: train with :mod:`fb_search._ops`'s kernels (see :class:`fb_search.layers.QConv`'s ``fast``)
        and the Bayesian Bits quantizers' hand-written backward (:class:`fb_search.quant.BBQuant`'s ``fused``):
        the MobileNet recipes turn them on; off, training reproduces the plain XLA kernels bit for bit.
      rules: which quantizer each weight and activation gets (:class:`fb_search.quant.QuantRules`); default
        ``QuantRules.default(mode, bb)``, the mode's own choice. The network input is always the 8-bit grid.
      rngs: parameter initialization.
    """

    def __init__(
        self,
        topology: Topology,
        mode: str = "float",
        config: NetConfig | None = None,
        bb: BBOptions | None = None,
        dw_impl: str = "auto",
        rules: QuantRules | None = None,
        compute_dtype: str = "float32",
        fused_kernels: bool = False,
        *,
        rngs: nnx.Rngs,
    ):
        rules = _rules_for(mode, config, bb, rules)
        if config is not None:
            check_config(config, topology)
        self.network, self.mode, self.variant = topology.name, mode, rules.bb.variant
        self.input_shape = tuple(topology.input_shape)
        self.graph = tuple((layer.name, layer.op, layer.inputs) for layer in topology.layers)
        self.output = topology.output
        macs = {layer.name: layer.layer_type.macs for layer in topology.layers if layer.layer_type.configurable}
        self.mac_ratio = tuple((name, m / max(macs.values())) for name, m in macs.items())
        self.macs = tuple(macs.items())
        cfg = {c.name: c for c in config.layers} if config is not None else {}
        conv = {"dw_impl": dw_impl, "compute_dtype": compute_dtype, "fast": fused_kernels}
        layers = {layer.name: _block(layer, rules, cfg, conv, rngs) for layer in topology.layers}
        self.tensor_q = _attach_activation_quantizers(topology, mode, rules, cfg, layers)
        self.layers = nnx.Dict(layers)
        for _, q in nnx.iter_graph(self.layers):  # the Bayesian Bits quantizers train with their fused form too
            if isinstance(q, BBQuant):
                q.fused = fused_kernels

    # -- forward ----------------------------------------------------------------------------------------------
    def quantizer_of(self, tensor: str) -> Quantizer | None:
        """The quantizer that produces ``tensor`` (None for the network output)."""
        for name, owner, attr in self.tensor_q:
            if name == tensor:
                return getattr(self.layers[owner], attr)
        return None

    def __call__(self, x: jax.Array, key: jax.Array | None = None) -> jax.Array:
        """Logits of a batch of NHWC images in [0, 1]; ``key`` samples the BB gates (None: deterministic)."""

        def sub(i: int) -> jax.Array | None:
            return None if key is None else jax.random.fold_in(key, i)

        n = len(self.graph)
        q = self.quantizer_of(INPUT)
        values = {INPUT: q(x, sub(2 * n))}
        for i, (name, op, inputs) in enumerate(self.graph):
            layer = self.layers[name]
            if op == "add":
                y = layer.core(*self._adder_inputs(inputs, values))
            elif op in ("avgpool", "maxpool"):
                y = layer.core(values[inputs[0]])
            else:
                y = layer.core(values[inputs[0]], sub(i))
            q = self.quantizer_of(name)
            values[name] = y if q is None else q(y, sub(n + i))
        return values[self.output]

    def _adder_inputs(self, inputs: tuple[str, ...], values: dict[str, jax.Array]) -> list[jax.Array]:
        """The residual adder's view of its inputs once precisions are fixed (``fixed`` and ``tqt`` modes).

        The deployed adder (DORY / pulp-nn ``add``) first requantizes every input to an 8-bit intermediate at the
        common step ``fb_schema.residual_add_step`` (rounding half up), then sums; modelling that here keeps the
        fake-quant network equal to the integer one. Straight-through gradient, as for every quantizer.
        """
        xs = [values[t] for t in inputs]
        if self.mode not in ("fixed", "tqt"):
            return xs
        quants = [self.quantizer_of(t) for t in inputs]
        steps = [q.grid(q.threshold(None))[2] for q in quants]  # traced precisions: see Quantizer.grid
        common = functools.reduce(
            jnp.maximum,
            [s * q.max_abs() / max_abs(ADDER_BITS, q.signed) for s, q in zip(steps, quants)],
        )
        out = []
        for x, q in zip(xs, quants):
            lo, hi = fb_grid(ADDER_BITS, q.signed)
            t = jnp.clip(jnp.floor(x / common + 0.5), lo, hi) * common
            out.append(x + jax.lax.stop_gradient(t - x))
        return out

    # -- search quantities ------------------------------------------------------------------------------------
    def use_latency_objective(self, objective: str, terms=None) -> None:
        """Search against ``bops`` (the paper), expected ``latency`` (terms from :func:`latency_terms`) or ``both``."""
        if objective not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {objective!r}")
        if objective != "bops" and not terms:
            raise ValueError(f"objective {objective!r} needs a latency table")
        self.objective = objective
        if objective != "bops":  # the table's values are state, so every target's search compiles alike
            self.latency_layers, self.latency_matrix = latency_state(terms)

    def expected_latency(self) -> jax.Array:
        """Expected 8b/8b-normalized latency of the configurable layers (needs :meth:`use_latency_objective`)."""
        return expected_latency(self.layers, self.latency_layers, self.latency_matrix[...])

    def regularizer(self) -> jax.Array:
        """The search penalty: the BOP-weighted gate cost, the expected latency, or their sum (``objective``)."""
        objective = getattr(self, "objective", "bops")
        if objective == "latency":
            return self.expected_latency()
        bops = self.bop_regularizer()
        return bops + self.expected_latency() if objective == "both" else bops

    def bop_regularizer(self) -> jax.Array:
        """Sum over conv/linear layers of ``MACs/maxMACs * (gate cost of w_q + gate cost of in_q)``."""
        total = jnp.zeros(())
        for name, ratio in self.mac_ratio:
            layer = self.layers[name]
            for q in (layer.w_q, layer.in_q):
                if isinstance(q, BBQuant):
                    total = total + ratio * q.cost()
        return total

    def _bits(self, q: Quantizer, expected: bool):
        if isinstance(q, BBQuant):
            return q.expected_bits() if expected else q.bits
        return q.bits if q.bits is not None else 32

    def expected_bits(self) -> jax.Array:
        """Mean expected bit width over the searched quantizers (8 when nothing is searched)."""
        seen, vals = set(), []
        for name, _ in self.mac_ratio:
            layer = self.layers[name]
            for q in (layer.w_q, layer.in_q):
                if isinstance(q, BBQuant) and id(q) not in seen:
                    seen.add(id(q))
                    vals.append(q.expected_bits())
        return jnp.mean(jnp.stack(vals)) if vals else jnp.asarray(float(FIXED_BITS))

    def expected_bops(self) -> jax.Array:
        """``sum MACs * E[b_in] * E[b_wt]`` (activation and weight gates taken independent)."""
        total = jnp.zeros(())
        for name, macs in self.macs:
            layer = self.layers[name]
            total = total + macs * self._bits(layer.in_q, True) * self._bits(layer.w_q, True)
        return total

    def precisions(self) -> dict[str, Precision]:
        """(b_in, b_wt) per layer read off the quantizers (BB: deterministic gates); adds/pools (8, None)."""
        out = {}
        for name, op, _ in self.graph:
            layer = self.layers[name]
            if op in ("add", "avgpool", "maxpool"):
                out[name] = Precision(FIXED_BITS, None)
            else:
                out[name] = Precision(self._bits(layer.in_q, False), self._bits(layer.w_q, False))
        return out


def to_netconfig(topology: Topology, precisions: dict[str, Precision], provenance: dict, metrics: dict) -> NetConfig:
    """A NetConfig of ``topology`` at ``precisions``."""
    layers = tuple(
        LayerConfig(
            layer.name,
            layer.layer_type.key,
            precisions[layer.name].b_in,
            precisions[layer.name].b_wt,
            topology.b_in_fixed(layer.name),
        )
        for layer in topology.layers
    )
    return NetConfig(topology.name, topology.layer_types(), layers, dict(provenance), dict(metrics))
