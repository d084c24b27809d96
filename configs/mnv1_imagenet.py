"""The paper's MobileNetV1-0.75 at 224×224 on ImageNet, three PULP ISAs.

Command (one host, every local accelerator; the data set prepared once with `fb-search prepare imagenet2012
--manual-dir ~/imagenet`, see packages/fb-search/README.md):
    .venv/bin/python tools/freebits.py configs/mnv1_imagenet.py --dry-run     # the plan; trains nothing
    .venv/bin/python tools/freebits.py configs/mnv1_imagenet.py
Multi-host: start the same command on every host with JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES and
JAX_PROCESS_ID set (fb-search calls jax.distributed.initialize()); results are written by process 0.
Expected (paper, Table I): 8b/8b 69.1 % top-1; the 1.5 pp pick ≈ −34 % latency on XpulpNNv1, ≈ −5.5 % on XpulpV2.
"""


def get_config():
    return {
        "name": "mnv1_imagenet",
        "network": "mobilenetv1",
        "network_params": {"width": 0.75, "resolution": 224, "num_classes": 1000},
        "data": "imagenet2012",
        "seed": 0,
        "recipe": "mnv1_imagenet",
        "float_steps": None,  # None: the recipe's own step counts (QuantLab's schedules)
        "search_steps": None,
        "variants": ("orig", "locked"),
        "mus": (0.0, 0.05, 0.1, 0.18, 0.3),
        "finetune_steps": None,
        "targets": ("pulp-model:xpulpv2", "pulp-model:xpulpnn1", "pulp-model:xpulpnn2"),
    }
