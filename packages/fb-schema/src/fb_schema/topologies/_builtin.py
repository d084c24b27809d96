"""The built-in networks: digitsnet (the embedded default), tinynet (tests), MobileNetV1 and MobileNetV2."""

from __future__ import annotations

from collections.abc import Callable

from fb_schema.topologies._topology import Topology, _Builder


def digitsnet(num_classes: int = 10, resolution: int = 16) -> Topology:
    """A small MobileNet-style network for scikit-learn's 8x8 digits, upsampled to ``resolution``.

    Stem conv (fixed 8b/8b), three depthwise-separable blocks (the second downsamples), one residual add,
    global average pool and a linear classifier: every op of the schema appears once at least.

    Example:
        >>> net = digitsnet()
        >>> len(net.layers), len(net.layer_types())
        (10, 10)
    """
    b = _Builder(resolution, resolution, 1)
    b.conv("conv0", 16, kernel=3)
    b.depthwise("dw1")
    b.conv("pw1", 32)
    b.depthwise("dw2", stride=2)
    skip = b.conv("pw2", 64)
    b.depthwise("dw3")
    b.conv("pw3", 64, act="none")
    b.add("add3", skip)
    return b.classifier("digitsnet", num_classes, {"resolution": resolution})


def tinynet(num_classes: int = 10) -> Topology:
    """The smallest network with every op: conv, depthwise, residual add, pool, linear (8x8x1 input).

    It is the topology of the golden QuantizedNetwork fixture that producers and consumers are tested against.

    Example:
        >>> [layer.op for layer in tinynet().layers]
        ['conv2d', 'depthwise_conv2d', 'add', 'avgpool', 'linear']
    """
    b = _Builder(8, 8, 1)
    skip = b.conv("conv0", 8, kernel=3)
    b.depthwise("dw1")
    b.add("add1", skip)
    return b.classifier("tinynet", num_classes)


_MNV1_BLOCKS = (
    (64, 1),
    (128, 2),
    (128, 1),
    (256, 2),
    (256, 1),
    (512, 2),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (512, 1),
    (1024, 2),
    (1024, 1),
)


def mobilenetv1(width: float = 0.75, resolution: int = 224, num_classes: int = 1000) -> Topology:
    """MobileNetV1 (Howard et al., arXiv 1704.04861), channels ``int(c * width)``, 3-channel input.

    Example:
        >>> net = mobilenetv1(0.75, 224)
        >>> sum(t.configurable for t in net.layer_types().values())
        20
    """
    b = _Builder(resolution, resolution, 3)
    b.conv("conv0", int(32 * width), kernel=3, stride=2)
    for i, (ch, stride) in enumerate(_MNV1_BLOCKS, start=1):
        b.depthwise(f"b{i}_dw", stride=stride)
        b.conv(f"b{i}_pw", int(ch * width))
    return b.classifier("mobilenetv1", num_classes, {"width": width, "resolution": resolution})


def _make_divisible(value: float, divisor: int = 8) -> int:
    """Channel rounding of the MobileNetV2 reference implementation."""
    new = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * value else new


_MNV2_BLOCKS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)  # (expansion t, channels c, repeats n, first stride s)


def mobilenetv2(width: float = 1.0, resolution: int = 224, num_classes: int = 1000) -> Topology:
    """MobileNetV2 (Sandler et al., arXiv 1801.04381): inverted residuals, linear bottlenecks, residual adds.

    Example:
        >>> net = mobilenetv2(1.0, 224)
        >>> sum(layer.op == "add" for layer in net.layers)
        10
    """
    b = _Builder(resolution, resolution, 3)
    b.conv("conv0", _make_divisible(32 * width), kernel=3, stride=2)
    index = 0
    for t, c, n, s in _MNV2_BLOCKS:
        out_ch = _make_divisible(c * width)
        for r in range(n):
            index += 1
            stride = s if r == 0 else 1
            block_in, in_ch = b.tensor, b.shape[2]
            if t != 1:
                b.conv(f"b{index}_expand", in_ch * t)
            b.depthwise(f"b{index}_dw", stride=stride)
            b.conv(f"b{index}_project", out_ch, act="none")
            if stride == 1 and in_ch == out_ch:
                b.add(f"b{index}_add", block_in)
    b.conv("conv_last", _make_divisible(1280 * max(1.0, width)))
    return b.classifier("mobilenetv2", num_classes, {"width": width, "resolution": resolution})


BUILTIN: dict[str, Callable[..., Topology]] = {
    "digitsnet": digitsnet,
    "tinynet": tinynet,
    "mobilenetv1": mobilenetv1,
    "mobilenetv2": mobilenetv2,
}


def get_topology(name: str, **params) -> Topology:
    """A built-in topology by name; unknown names list the known ones."""
    if name not in BUILTIN:
        raise ValueError(
            f"unknown network {name!r}; built in: {', '.join(sorted(BUILTIN))} (or give a topology file path)"
        )
    return BUILTIN[name](**params)


def resolve_topology(name: str, **params) -> Topology:
    """A built-in network by name, or a topology file by path (``*.json`` or any existing file).

    ``params`` apply to built-in networks only; a topology file takes none (except a ``num_classes`` equal to
    its own).
    """
    from fb_schema.topologies._file import is_topology_path, load_topology

    if not is_topology_path(name):
        return get_topology(name, **params)
    topology = load_topology(name)
    extra = {k: v for k, v in params.items() if not (k == "num_classes" and v == topology.num_classes)}
    if extra:
        raise ValueError(f"{name}: a topology file takes no {', '.join(sorted(extra))} parameter")
    return topology
