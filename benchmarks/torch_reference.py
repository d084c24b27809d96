"""PyTorch reference: a MobileNetV1 float training step (the yardstick for our float and Bayesian Bits steps).

Same network as ``fb_schema.topologies.mobilenetv1``: 3x3/s2 stem, 13 depthwise-separable blocks (channels
``int(c * width)``), BatchNorm after every conv, ReLU6, global average pool, a biased 1000-class classifier.
float32, NCHW, eager mode, SGD with momentum 0.9, 2 intra-op threads. Runs only when ``torch`` is installed
(``benchmarks/requirements-peer.txt`` pins the version the README's numbers were measured with).

    .venv/bin/python benchmarks/torch_reference.py --width 0.25 --resolution 128 --batch 32
"""

from __future__ import annotations

import time

import click

BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)) + ((512, 1),) * 5 + ((1024, 2), (1024, 1))
THREADS = 2


def available() -> bool:
    """Whether torch can be imported."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def mobilenetv1(width: float, num_classes: int = 1000):
    """The torch.nn MobileNetV1 (``width`` multiplier) with BN and ReLU6."""
    from torch import nn

    def conv_bn(cin: int, cout: int, k: int, stride: int, groups: int = 1) -> list:
        conv = nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False)
        return [conv, nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1), nn.ReLU6(inplace=True)]

    c = int(32 * width)
    layers = conv_bn(3, c, 3, 2)
    for ch, stride in BLOCKS:
        out = int(ch * width)
        layers += conv_bn(c, c, 3, stride, groups=c) + conv_bn(c, out, 1, 1)
        c = out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c, num_classes)]
    return nn.Sequential(*layers)


def make_step(width: float, resolution: int, batch: int, num_classes: int = 1000, seed: int = 0):
    """A callable running one float training step (forward, backward, SGD update); returns its seconds."""
    import torch

    torch.set_num_threads(THREADS)
    torch.manual_seed(seed)
    model = mobilenetv1(width, num_classes).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.rand(batch, 3, resolution, resolution)
    y = torch.randint(0, num_classes, (batch,))

    def step(_: int = 0) -> float:
        t = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        return time.perf_counter() - t

    step()  # warm-up (allocator, oneDNN primitive caches)
    return step


@click.command()
@click.option("--width", default=0.25, show_default=True)
@click.option("--resolution", default=128, show_default=True)
@click.option("--batch", default=32, show_default=True)
@click.option("--repeats", default=10, show_default=True)
def main(width: float, resolution: int, batch: int, repeats: int) -> None:
    if not available():
        raise click.ClickException("torch is not installed: pip install -r benchmarks/requirements-peer.txt")
    import statistics

    import torch

    step = make_step(width, resolution, batch)
    times = [step() for _ in range(repeats)]
    click.echo(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads: MobileNetV1-{width:g}@{resolution} batch "
        f"{batch} float step {statistics.median(times) * 1e3:.1f} ms (median of {repeats})"
    )


if __name__ == "__main__":
    main()
