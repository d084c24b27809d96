"""A reduced demo for the end-to-end test: fewer steps, two μ per variant, all three ISAs.

Command:  .venv/bin/python tools/freebits.py tests/e2e/small_config.py --out /tmp/fb_e2e
Expected: the same artifacts as `make demo` in a few minutes; accuracies lower than the demo's.
"""


def get_config():
    return {
        "name": "e2e",
        "network": "digitsnet",
        "data": "digits",
        "seed": 0,
        "float_steps": 300,
        "search_steps": 80,
        "variants": ("orig", "locked"),
        "mus": (0.0, 0.3),
        "targets": ("pulp-model:xpulpv2", "pulp-model:xpulpnn1", "pulp-model:xpulpnn2"),
        "margins_pp": (0.5, 1.5),
        "latency_target_fraction": 0.8,
        "finetune_steps": 60,
    }
