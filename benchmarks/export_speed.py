"""fb-deploy speed on a full-size network: integerize, DORY export (with goldens), check and verify.

    .venv/bin/python benchmarks/export_speed.py [--width 0.75] [--resolution 224]

Builds a random-weight MobileNetV1 QuantizedNetwork (mixed 2/4/8 bits) in a temporary directory and prints the
wall time of each stage.
"""

from __future__ import annotations

import argparse
import itertools
import tempfile
import time
from pathlib import Path

from fb_deploy import check_model, errors, export_dory, integerize, random_quantized_network, verify
from fb_schema import NetConfig, Precision
from fb_schema.topologies import mobilenetv1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--width", type=float, default=0.75)
    parser.add_argument("--resolution", type=int, default=224)
    args = parser.parse_args()
    topo = mobilenetv1(args.width, args.resolution)
    config = NetConfig.homogeneous(topo, 8, 8)
    pairs = itertools.cycle([(2, 4), (4, 2), (8, 4), (4, 8), (4, 4)])
    config = config.with_precisions(
        {layer.name: Precision(*next(pairs)) for layer in config.layers if layer.b_wt and not layer.b_in_fixed}
    )
    with tempfile.TemporaryDirectory() as tmp:
        stages = {}
        t = time.perf_counter()
        qn = random_quantized_network(topo, config, path=Path(tmp) / "net.json", n_ref=2, n_calib=2)
        stages["random artifact (fake-quant forward)"] = time.perf_counter() - t
        t = time.perf_counter()
        net = integerize(qn)
        stages["integerize"] = time.perf_counter() - t
        t = time.perf_counter()
        out = export_dory(net, Path(tmp) / "model", code_reserved=135000)
        stages["export (ONNX + goldens)"] = time.perf_counter() - t
        t = time.perf_counter()
        findings = check_model(out)
        stages["check"] = time.perf_counter() - t
        t = time.perf_counter()
        report = verify(out, n_random=2)
        stages["verify (twin, 1 golden + 2 random)"] = time.perf_counter() - t
    print(f"mobilenetv1({args.width}, {args.resolution}): {len(net.layers)} DORY layers, int{net.requant_bits} requant")
    for name, seconds in stages.items():
        print(f"  {name:<40} {seconds:7.2f} s")
    print(f"  check errors: {len(errors(findings))}, verify ok: {report.ok}, fake-quant: {report.fakequant}")


if __name__ == "__main__":
    main()
