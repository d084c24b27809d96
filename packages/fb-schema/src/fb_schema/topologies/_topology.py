"""A network as an ordered list of named layers, each with its LayerType and its input tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

from fb_schema._layer_type import LayerType

INPUT = "input"
ACTIVATIONS = ("relu", "relu6", "none")
LAYOUTS = ("nhwc", "nchw")
BIASED_OPS = ("conv2d", "depthwise_conv2d", "linear")


@dataclass(frozen=True)
class TopologyLayer:
    """One layer. Its output tensor carries the layer's name; ``inputs`` names tensors (``"input"`` = image).

    ``act`` is the activation that follows it: ``relu`` (unbounded in float; the output quantizer clips it),
    ``relu6`` (both output unsigned) or ``none`` (output signed, e.g. the MobileNetV2 projection and the
    classifier). On an ``add`` it follows the sum (ResNet's post-add ReLU). ``bias``: the conv carries a bias
    and no BatchNorm (a conv with BN folded in, as exporters write it); a conv without one is followed by
    BatchNorm. Linear layers always carry a bias.
    """

    name: str
    layer_type: LayerType
    inputs: tuple[str, ...]
    act: str = "relu6"
    bias: bool = False

    def __post_init__(self) -> None:
        if self.layer_type.op == "linear" and not self.bias:
            object.__setattr__(self, "bias", True)

    @property
    def op(self) -> str:
        return self.layer_type.op


@dataclass(frozen=True)
class Topology:
    """An ordered, shape-checked list of layers.

    Example:
        >>> from fb_schema.topologies import digitsnet
        >>> net = digitsnet()
        >>> [layer.name for layer in net.layers][:3]
        ['conv0', 'dw1', 'pw1']
        >>> net.b_in_fixed("conv0"), net.b_in_fixed("pw1")
        (True, False)
    """

    name: str
    input_shape: tuple[int, int, int]  # H, W, C
    num_classes: int
    layers: tuple[TopologyLayer, ...]
    params: dict = field(default_factory=dict, compare=False)
    input_layout: str = "nhwc"  # the layout of the user's data and original model (models compute NHWC)
    input_range: tuple[float, float] = (0.0, 1.0)  # the input quantizer's range: signed symmetric if lo < 0

    def __post_init__(self) -> None:
        if self.input_layout not in LAYOUTS:
            raise ValueError(f"{self.name}: input_layout must be one of {LAYOUTS}, got {self.input_layout!r}")
        lo, hi = self.input_range
        if not lo < hi or hi <= 0:
            raise ValueError(f"{self.name}: input_range must be (lo, hi) with lo < hi and hi > 0, got {lo, hi}")
        if not self.layers:
            raise ValueError(f"{self.name}: a topology needs at least one layer")
        shapes: dict[str, tuple[int, int, int]] = {INPUT: self.input_shape}
        for layer in self.layers:
            if layer.name in shapes:
                raise ValueError(f"{self.name}: duplicate tensor name {layer.name!r}")
            if layer.act not in ACTIVATIONS:
                raise ValueError(f"{self.name}: {layer.name}: act must be one of {ACTIVATIONS}")
            if layer.bias and layer.op not in BIASED_OPS:
                raise ValueError(f"{self.name}: {layer.name}: {layer.op} takes no bias")
            if layer.op in ("avgpool", "maxpool") and layer.act == "relu6":
                raise ValueError(f"{self.name}: {layer.name}: a pool takes act relu or none")
            lt = layer.layer_type
            expected = (lt.in_h, lt.in_w, lt.in_ch)
            want_inputs = 2 if lt.op == "add" else 1
            if len(layer.inputs) != want_inputs:
                raise ValueError(f"{self.name}: {layer.name}: {lt.op} takes {want_inputs} input(s)")
            for src in layer.inputs:
                if src not in shapes:
                    raise ValueError(f"{self.name}: {layer.name}: unknown input tensor {src!r}")
                got = shapes[src]
                if lt.op == "linear":
                    got = (1, 1, got[0] * got[1] * got[2])
                if got != expected:
                    raise ValueError(f"{self.name}: {layer.name}: input {src!r} has shape {got}, expects {expected}")
            shapes[layer.name] = (*lt.out_hw, lt.out_ch)
        if self.layers[-1].op != "linear":
            raise ValueError(f"{self.name}: the last layer must be the linear classifier, got {self.layers[-1].op}")
        if self.layers[-1].layer_type.out_ch != self.num_classes:
            raise ValueError(f"{self.name}: the classifier has {self.layers[-1].layer_type.out_ch} outputs, "
                             f"expected num_classes = {self.num_classes}")  # fmt: skip

    def layer(self, name: str) -> TopologyLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"{self.name}: no layer named {name!r}")

    def layer_types(self) -> dict[str, LayerType]:
        """Unique layer types by key, in order of first use."""
        out: dict[str, LayerType] = {}
        for layer in self.layers:
            out.setdefault(layer.layer_type.key, layer.layer_type)
        return out

    def consumers(self, tensor: str) -> list[TopologyLayer]:
        return [layer for layer in self.layers if tensor in layer.inputs]

    def b_in_fixed(self, name: str) -> bool:
        """Inputs that are never searched: the image, anything an add produces, and non-configurable layers.

        The first layer reads the 8-bit image; a layer fed by a residual add reads an 8-bit tensor (as in the
        paper); add and avgpool run at the 8-bit precision of their input.
        """
        layer = self.layer(name)
        if not layer.layer_type.configurable:
            return True
        producers = {other.name: other for other in self.layers}
        return any(src == INPUT or producers[src].op == "add" for src in layer.inputs)

    @property
    def output(self) -> str:
        return self.layers[-1].name

    @property
    def input_signed(self) -> bool:
        """Whether the input quantizer is signed (symmetric around 0): the input range reaches below 0."""
        return self.input_range[0] < 0

    @property
    def input_threshold(self) -> float:
        """The input quantizer's clipping threshold: ``max(|lo|, hi)`` signed, ``hi`` unsigned."""
        lo, hi = self.input_range
        return max(-lo, hi) if lo < 0 else hi


class _Builder:
    """Appends layers while tracking the current tensor and its shape."""

    def __init__(self, h: int, w: int, c: int):
        self.layers: list[TopologyLayer] = []
        self.tensor, self.shape = INPUT, (h, w, c)
        self.input_shape = (h, w, c)

    def _push(self, name: str, lt: LayerType, inputs: tuple[str, ...], act: str, bias: bool = False) -> str:
        self.layers.append(TopologyLayer(name, lt, inputs, act, bias))
        self.tensor, self.shape = name, (*lt.out_hw, lt.out_ch)
        return name

    def conv(self, name: str, out_ch: int, kernel=1, stride=1, act: str = "relu6", padding=None, bias=False,
             src: str | None = None) -> str:  # fmt: skip
        src = self.tensor if src is None else src
        h, w, c = self.shapes()[src]
        lt = LayerType.conv2d(h, w, c, out_ch, kernel, stride, padding)
        return self._push(name, lt, (src,), act, bias)

    def depthwise(self, name: str, kernel=3, stride=1, act: str = "relu6", padding=None, bias=False) -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.depthwise(h, w, c, kernel, stride, padding), (self.tensor,), act, bias)

    def add(self, name: str, skip: str, act: str = "none") -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.add(h, w, c), (skip, self.tensor), act)

    def maxpool(self, name: str, kernel=2, stride=None, padding=(0, 0, 0, 0)) -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.maxpool(h, w, c, kernel, stride, padding), (self.tensor,), "none")

    def shapes(self) -> dict[str, tuple[int, int, int]]:
        out = {INPUT: self.input_shape}
        out.update({layer.name: (*layer.layer_type.out_hw, layer.layer_type.out_ch) for layer in self.layers})
        return out

    def global_pool(self, name: str = "pool") -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.global_avgpool(h, w, c), (self.tensor,), "none")

    def linear(self, name: str, out_features: int) -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.linear(h * w * c, out_features), (self.tensor,), "none")

    def classifier(self, name: str, num_classes: int, params: dict | None = None) -> Topology:
        """End in a global average pool and a linear classifier; the topology ``name`` of every layer so far."""
        self.global_pool("pool")
        self.linear("fc", num_classes)
        return Topology(name, self.input_shape, num_classes, tuple(self.layers), params or {})
