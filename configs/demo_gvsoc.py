"""The demo, and then every deployed network on GVSOC: each layer's checksum and the measured vs table cycles.

Command:  source PREFIX/env.sh pulp-open && make demo-gvsoc
          (= .venv/bin/python tools/freebits.py configs/demo_gvsoc.py; the GVSOC kit's env.sh exports DORY_HOME,
          DORY_PYTHON, PULP_SDK_HOME and the toolchain). It resumes runs/demo/ (what make demo wrote) and adds the
          GVSOC runs: the 8b, 4b and XpulpV2 picks with DORY's mixed-sw kernels on pulp-open, the XpulpNN v1/v2
          picks with mixed-hw on pulp-open-nn. A failed checksum fails the deploy stage.
Expected: report.md's "On GVSOC" table with N/N checksums for every network; results.json deployed.*.gvsoc.
"""

import importlib.util
from pathlib import Path


def get_config():
    spec = importlib.util.spec_from_file_location("fb_demo_config", Path(__file__).with_name("demo.py"))
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return {**demo.get_config(), "gvsoc": True}
