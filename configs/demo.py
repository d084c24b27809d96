"""The embedded default: digitsnet on scikit-learn's digits, three PULP ISAs from the built-in latency model.

Command:  make demo          (= .venv/bin/python tools/freebits.py configs/demo.py)
Expected: runs/demo/report.md, results.json, pareto_pulp-*.png, fig1_throughput.png and one DORY model
          directory per fine-tuned config under runs/demo/deploy/; float accuracy ≥ 97 % on the 540 validation
          images; every free-bits child no slower than its Bayesian Bits parent on every target.
"""


def get_config():
    return {
        "name": "demo",
        "network": "digitsnet",
        "data": "digits",
        "seed": 0,
        "recipe": "digits",  # fb_search.recipes.digits: optimizers, schedules and step counts
        "float_steps": None,  # None: the recipe's
        "search_steps": None,
        "variants": ("orig", "locked"),
        "mus": (0.0, 0.01, 0.03, 0.1, 0.3),
        "latency_variants": ("orig",),  # beyond the paper: the search sees each target's latency table
        "latency_mus": (0.5, 2.0),
        "knapsack_budgets": (0.6, 0.7, 0.8, 0.9),  # beyond the paper: exact latency-budget optimizer
        "targets": ("pulp-model:xpulpv2", "pulp-model:xpulpnn1", "pulp-model:xpulpnn2"),
        "margins_pp": (0.5, 1.5),
        "latency_target_fraction": 0.8,
        "finetune_steps": None,
    }
