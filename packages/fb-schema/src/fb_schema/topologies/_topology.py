"""A network as an ordered list of named layers, each with its LayerType and its input tensors."""

from __future__ import annotations

from dataclasses import dataclass, field

from fb_schema._layer_type import LayerType

INPUT = "input"
ACTIVATIONS = ("relu6", "none")


@dataclass(frozen=True)
class TopologyLayer:
    """One layer. Its output tensor carries the layer's name; ``inputs`` names tensors (``"input"`` = image).

    ``act`` is the activation that follows it: ``relu6`` (output unsigned) or ``none`` (output signed, e.g. the
    MobileNetV2 projection and the classifier).
    """

    name: str
    layer_type: LayerType
    inputs: tuple[str, ...]
    act: str = "relu6"

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

    def __post_init__(self) -> None:
        shapes: dict[str, tuple[int, int, int]] = {INPUT: self.input_shape}
        for layer in self.layers:
            if layer.name in shapes:
                raise ValueError(f"{self.name}: duplicate tensor name {layer.name!r}")
            if layer.act not in ACTIVATIONS:
                raise ValueError(f"{self.name}: {layer.name}: act must be one of {ACTIVATIONS}")
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


class _Builder:
    """Appends layers while tracking the current tensor and its shape."""

    def __init__(self, h: int, w: int, c: int):
        self.layers: list[TopologyLayer] = []
        self.tensor, self.shape = INPUT, (h, w, c)

    def _push(self, name: str, lt: LayerType, inputs: tuple[str, ...], act: str) -> str:
        self.layers.append(TopologyLayer(name, lt, inputs, act))
        self.tensor, self.shape = name, (*lt.out_hw, lt.out_ch)
        return name

    def conv(self, name: str, out_ch: int, kernel: int = 1, stride: int = 1, act: str = "relu6") -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.conv2d(h, w, c, out_ch, kernel, stride), (self.tensor,), act)

    def depthwise(self, name: str, kernel: int = 3, stride: int = 1) -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.depthwise(h, w, c, kernel, stride), (self.tensor,), "relu6")

    def add(self, name: str, skip: str) -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.add(h, w, c), (skip, self.tensor), "none")

    def global_pool(self, name: str = "pool") -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.global_avgpool(h, w, c), (self.tensor,), "none")

    def linear(self, name: str, out_features: int) -> str:
        h, w, c = self.shape
        return self._push(name, LayerType.linear(h * w * c, out_features), (self.tensor,), "none")
