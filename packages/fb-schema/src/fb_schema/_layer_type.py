"""LayerType: every parameter of one kernel invocation, with a derived, unique, readable key."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, cast

from fb_schema._errors import SchemaError
from fb_schema._io import Fields

CONFIGURABLE_OPS = ("conv2d", "depthwise_conv2d", "linear")
NON_CONFIGURABLE_OPS = ("add", "avgpool", "maxpool")
OPS = CONFIGURABLE_OPS + NON_CONFIGURABLE_OPS

_KEY_RE = re.compile(
    r"^(?P<op>[a-z0-9_]+?)_(?P<in_h>\d+)x(?P<in_w>\d+)x(?P<in_ch>\d+)_o(?P<out_ch>\d+)"
    r"_k(?P<kh>\d+)x(?P<kw>\d+)_s(?P<sh>\d+)x(?P<sw>\d+)_p(?P<t>\d+)\.(?P<l>\d+)\.(?P<b>\d+)\.(?P<r>\d+)"
    r"_g(?P<groups>\d+)$"
)
FIELDS = ("op", "in_h", "in_w", "in_ch", "out_ch", "kernel", "stride", "padding", "groups")


@dataclass(frozen=True)
class LayerType:
    """One kernel invocation: op, input shape, channels, kernel, stride, padding, groups.

    Conventions: convs default to symmetric ``k//2`` padding (any explicit ``[top, left, bottom, right]`` is
    allowed; kernels and strides may be rectangular); depthwise means ``groups == in_ch == out_ch``
    (other grouped convs are rejected); ``linear`` has a 1x1 input, kernel and stride 1 and no padding; ``add``
    and ``avgpool`` keep the channel count. Channels are the model's own, unpadded.

    Example:
        >>> t = LayerType.conv2d(16, 16, 1, 16, kernel=3)
        >>> t.key
        'conv2d_16x16x1_o16_k3x3_s1x1_p1.1.1.1_g1'
        >>> t.out_hw, t.macs
        ((16, 16), 36864)
        >>> LayerType.from_key(t.key) == t
        True
    """

    op: str
    in_h: int
    in_w: int
    in_ch: int
    out_ch: int
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int, int, int] = (0, 0, 0, 0)
    groups: int = 1

    def __post_init__(self) -> None:
        problem = self._problem()
        if problem:
            raise ValueError(f"invalid layer type {problem[0]}: {problem[1]}")

    def _problem(self) -> tuple[str, str] | None:
        if self.op not in OPS:
            return "op", f"one of {', '.join(OPS)}, got {self.op!r}"
        for name in ("in_h", "in_w", "in_ch", "out_ch", "groups"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                return name, f"a positive integer, got {value!r}"
        for name, size in (("kernel", 2), ("stride", 2), ("padding", 4)):
            value = getattr(self, name)
            low = 0 if name == "padding" else 1
            if len(value) != size or any(not isinstance(v, int) or v < low for v in value):
                return name, f"{size} integers >= {low}, got {list(value)!r}"
        if self.op == "depthwise_conv2d" and not (self.groups == self.in_ch == self.out_ch):
            return "groups", "depthwise needs groups == in_ch == out_ch"
        if self.op != "depthwise_conv2d" and self.groups != 1:
            return "groups", f"1 for {self.op} (only depthwise convolutions are grouped), got {self.groups}"
        if self.op == "linear" and (
            (self.in_h, self.in_w) != (1, 1) or self.kernel != (1, 1) or self.stride != (1, 1) or any(self.padding)
        ):
            return "op", "linear needs in_h = in_w = 1, kernel and stride 1, zero padding"
        if self.op in NON_CONFIGURABLE_OPS and self.in_ch != self.out_ch:
            return "out_ch", f"{self.op} keeps the channel count ({self.in_ch}), got {self.out_ch}"
        oh = (self.in_h + self.padding[0] + self.padding[2] - self.kernel[0]) // self.stride[0] + 1
        ow = (self.in_w + self.padding[1] + self.padding[3] - self.kernel[1]) // self.stride[1] + 1
        if oh < 1 or ow < 1:
            return "kernel", f"a kernel that fits the padded {self.in_h}x{self.in_w} input"
        return None

    # -- constructors -------------------------------------------------------------------------------------------
    @classmethod
    def conv2d(
        cls,
        in_h: int,
        in_w: int,
        in_ch: int,
        out_ch: int,
        kernel: int | tuple[int, int] = 1,
        stride: int | tuple[int, int] = 1,
        padding: tuple[int, int, int, int] | None = None,
    ) -> LayerType:
        """A regular convolution; ``padding`` (top, left, bottom, right) defaults to symmetric ``k//2``.

        Example:
            >>> LayerType.conv2d(49, 10, 1, 64, (10, 4), 2, (4, 1, 5, 1)).out_hw
            (25, 5)
        """
        k, s = _pair(kernel), _pair(stride)
        return cls("conv2d", in_h, in_w, in_ch, out_ch, k, s, _padding(k, padding))

    @classmethod
    def depthwise(
        cls,
        in_h: int,
        in_w: int,
        ch: int,
        kernel: int | tuple[int, int] = 3,
        stride: int | tuple[int, int] = 1,
        padding: tuple[int, int, int, int] | None = None,
    ) -> LayerType:
        k, s = _pair(kernel), _pair(stride)
        return cls("depthwise_conv2d", in_h, in_w, ch, ch, k, s, _padding(k, padding), ch)

    @classmethod
    def maxpool(
        cls,
        h: int,
        w: int,
        ch: int,
        kernel: int | tuple[int, int] = 2,
        stride: int | tuple[int, int] | None = None,
        padding: tuple[int, int, int, int] = (0, 0, 0, 0),
    ) -> LayerType:
        """Max pooling (stride defaults to the kernel)."""
        k = _pair(kernel)
        return cls("maxpool", h, w, ch, ch, k, k if stride is None else _pair(stride), _padding(k, padding))

    @classmethod
    def linear(cls, in_features: int, out_features: int) -> LayerType:
        return cls("linear", 1, 1, in_features, out_features)

    @classmethod
    def add(cls, h: int, w: int, ch: int) -> LayerType:
        return cls("add", h, w, ch, ch)

    @classmethod
    def global_avgpool(cls, h: int, w: int, ch: int) -> LayerType:
        return cls("avgpool", h, w, ch, ch, (h, w), (h, w))

    # -- derived ------------------------------------------------------------------------------------------------
    @property
    def key(self) -> str:
        t, l, b, r = self.padding
        return (
            f"{self.op}_{self.in_h}x{self.in_w}x{self.in_ch}_o{self.out_ch}_k{self.kernel[0]}x{self.kernel[1]}"
            f"_s{self.stride[0]}x{self.stride[1]}_p{t}.{l}.{b}.{r}_g{self.groups}"
        )

    @property
    def configurable(self) -> bool:
        """Whether the layer has weights, i.e. a (b_in, b_wt) pair rather than only b_in."""
        return self.op in CONFIGURABLE_OPS

    @property
    def out_hw(self) -> tuple[int, int]:
        oh = (self.in_h + self.padding[0] + self.padding[2] - self.kernel[0]) // self.stride[0] + 1
        ow = (self.in_w + self.padding[1] + self.padding[3] - self.kernel[1]) // self.stride[1] + 1
        return oh, ow

    @property
    def macs(self) -> int:
        """Multiply-accumulates (element operations for add and the pools)."""
        oh, ow = self.out_hw
        if self.op in ("conv2d", "depthwise_conv2d"):
            return oh * ow * self.out_ch * self.kernel[0] * self.kernel[1] * (self.in_ch // self.groups)
        if self.op == "linear":
            return self.in_ch * self.out_ch
        if self.op == "add":
            return self.in_h * self.in_w * self.in_ch
        if self.op == "maxpool":
            return oh * ow * self.out_ch * self.kernel[0] * self.kernel[1]
        return self.in_h * self.in_w * self.in_ch  # avgpool: one accumulate per input element

    @property
    def weight_shape_hwio(self) -> tuple[int, ...] | None:
        """Shape of the float weight in a QuantizedNetwork (HWIO; linear: (in, out); depthwise: (kh, kw, 1, C))."""
        if self.op == "linear":
            return (self.in_ch, self.out_ch)
        if self.op in ("conv2d", "depthwise_conv2d"):
            return (*self.kernel, self.in_ch // self.groups, self.out_ch)
        return None

    # -- (de)serialization --------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        for name in ("kernel", "stride", "padding"):
            d[name] = list(d[name])
        return d

    @classmethod
    def from_json(cls, obj: Any, source: str = "<object>", path: str = "") -> LayerType:
        """Parse and validate; raises SchemaError naming the field."""
        f = Fields(obj, source, path)
        f.only(set(FIELDS))
        values: dict[str, Any] = {"op": f.get("op", str)}
        for name in ("in_h", "in_w", "in_ch", "out_ch", "groups"):
            values[name] = f.get(name, int)
        for name, size in (("kernel", 2), ("stride", 2), ("padding", 4)):
            seq = f.get(name, list)
            if len(seq) != size or not all(isinstance(v, int) and not isinstance(v, bool) for v in seq):
                raise f.error(name, f"a list of {size} integers, got {seq!r}")
            values[name] = tuple(seq)
        obj_ = cls.__new__(cls)
        for name, value in values.items():
            object.__setattr__(obj_, name, value)
        problem = obj_._problem()
        if problem:
            raise f.error(problem[0], problem[1])
        return obj_

    @classmethod
    def from_key(cls, key: str) -> LayerType:
        """Parse a key back into its LayerType (the key carries every parameter)."""
        m = _KEY_RE.match(key)
        if not m:
            raise ValueError(f"not a layer-type key: {key!r}")
        g = {k: int(v) for k, v in m.groupdict().items() if k != "op"}
        return cls(
            m.group("op"),
            g["in_h"],
            g["in_w"],
            g["in_ch"],
            g["out_ch"],
            (g["kh"], g["kw"]),
            (g["sh"], g["sw"]),
            (g["t"], g["l"], g["b"], g["r"]),
            g["groups"],
        )


def _pair(value: int | tuple[int, int]) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else (int(value[0]), int(value[1]))


def _padding(kernel: tuple[int, int], padding) -> tuple[int, int, int, int]:
    if padding is None:
        return (kernel[0] // 2, kernel[1] // 2, kernel[0] // 2, kernel[1] // 2)
    # Any length passes through: LayerType's own check names a padding that is not 4 values.
    return cast("tuple[int, int, int, int]", tuple(int(p) for p in padding))


def parse_layer_types(f: Fields, name: str = "layer_types") -> dict[str, LayerType]:
    """Read a ``{KEY: {LayerType fields}}`` map and reject any key that does not match its parameters."""
    sub = f.sub(name)
    assert sub is not None
    out: dict[str, LayerType] = {}
    for key, value in sub.obj.items():
        lt = LayerType.from_json(value, f.source, sub.at(key))
        if lt.key != key:
            raise SchemaError(f.source, sub.at(key), f"the key derived from its parameters, {lt.key!r}")
        out[key] = lt
    return out
