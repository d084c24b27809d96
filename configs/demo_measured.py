"""The demo on measured numbers: digitsnet on scikit-learn's digits, latencies from the committed GVSOC tables.

The latency of every layer comes from `tables/gvsoc/` (measured by `fb-profile sweep --target gvsoc:<isa>` on the
GVSOC kit, toolchain kit-gcc12; see tables/gvsoc/README.md), read through fb-profile's `table:` backend: nothing
is re-measured and no model number enters. report.md names the table, its sha256 and where it was measured for
every target.

The search and the heuristic need every pair of every layer type, so the pipeline stops at the latency tables,
with one line naming the first missing point, while a table lacks points: the committed digitsnet tables lack the
pairs that fail on GVSOC with this toolchain (listed under each table's `failed`).

Command:  .venv/bin/python tools/freebits.py configs/demo_measured.py
Expected: runs/demo_measured/report.md with Table I, the Pareto plots and the per-layer diffs on both measured targets.
"""

from pathlib import Path

TABLES = Path(__file__).resolve().parents[1] / "tables" / "gvsoc"


def get_config():
    return {
        "name": "demo_measured",
        "network": "digitsnet",
        "data": "digits",
        "seed": 0,
        "recipe": "digits",
        "float_steps": None,
        "search_steps": None,
        "variants": ("orig", "locked"),
        "mus": (0.0, 0.01, 0.03, 0.1, 0.3),
        "latency_variants": ("orig",),
        "latency_mus": (0.5, 2.0),
        "knapsack_budgets": (0.6, 0.7, 0.8, 0.9),
        "targets": tuple(
            f"table:{TABLES / f'digitsnet_gvsoc-{isa}-kit-gcc12.json'}" for isa in ("xpulpv2", "xpulpnn1")
        ),
        "margins_pp": (0.5, 1.5),
        "latency_target_fraction": 0.8,
        "finetune_steps": None,
    }
