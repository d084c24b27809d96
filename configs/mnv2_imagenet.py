"""The paper's MobileNetV2-1.0 at 224×224 on ImageNet (8-bit residual adds), three PULP ISAs.

Command: as configs/mnv1_imagenet.py, with this file:
    .venv/bin/python tools/freebits.py configs/mnv2_imagenet.py --dry-run
Expected (paper, Table I): 8b/8b 71.5 % top-1; 4b/4b + free bits ≈ −25.7 % latency on XpulpNNv2.
"""


def get_config():
    return {
        "name": "mnv2_imagenet",
        "network": "mobilenetv2",
        "network_params": {"width": 1.0, "resolution": 224, "num_classes": 1000},
        "data": "imagenet2012",
        "seed": 0,
        "recipe": "mnv2_imagenet",
        "float_steps": None,
        "search_steps": None,
        "variants": ("orig", "locked"),
        "mus": (0.0, 0.05, 0.1, 0.18, 0.3),
        "finetune_steps": None,
        "targets": ("pulp-model:xpulpv2", "pulp-model:xpulpnn1", "pulp-model:xpulpnn2"),
    }
