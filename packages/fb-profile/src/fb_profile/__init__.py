"""fb_profile: latency tables for Free Bits.

Extracts the layer types of a network (built-in topology, topology file, NetConfig or ONNX; ``import_onnx`` is
the ONNX -> topology converter that ``fb-search import-onnx`` shares), estimates or measures their latency at
every (b_in, b_wt) pair on a target, and writes the result as a ``fb_schema.LatencyTable`` (the paper's LD).
Backends: ``pulp-model`` (analytical 8-core PULP cluster: DORY tiling, PULP-NN kernels, DMA, L3; ISAs xpulpv2,
xpulpnn1, xpulpnn2), ``gvsoc`` (the user's DORY + GVSOC) and ``table`` (imported measurements).
Paper: Rutishauser, Conti, Benini, "Free Bits: Latency Optimization of Mixed-Precision Quantized Neural Networks on
the Edge", arXiv 2307.02894.
"""

from fb_profile._accuracy import Accuracy, accuracy
from fb_profile._backends import BACKENDS, MODEL_VERSION, PulpModel, make_backend
from fb_profile._calibrate import Calibration, calibrate
from fb_profile._compare import compare_tables, plot_against, spearman
from fb_profile._constants import (
    DEFAULT_FIT,
    FREE,
    ISAS,
    TOOLCHAINS,
    Constants,
    builtin_constants,
    load_constants,
    save_constants,
)
from fb_profile._layers import layer_counts, layer_types_of, network_layers
from fb_profile._model import kernel_cycles, layer_cycles
from fb_profile._onnx_import import ImportedNetwork, import_onnx, onnx_layers
from fb_profile._plot import plot_throughput, throughput_stats
from fb_profile._sweep import SweepPlan, default_cache_dir, sweep
from fb_profile._tiler import Tile, TilingError, tile_layer

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_FIT",
    "TOOLCHAINS",
    "Accuracy",
    "Calibration",
    "SweepPlan",
    "accuracy",
    "calibrate",
    "compare_tables",
    "plot_against",
    "spearman",
    "BACKENDS",
    "FREE",
    "ISAS",
    "MODEL_VERSION",
    "Constants",
    "ImportedNetwork",
    "PulpModel",
    "Tile",
    "TilingError",
    "builtin_constants",
    "default_cache_dir",
    "import_onnx",
    "kernel_cycles",
    "layer_counts",
    "layer_cycles",
    "layer_types_of",
    "load_constants",
    "make_backend",
    "network_layers",
    "onnx_layers",
    "plot_throughput",
    "save_constants",
    "sweep",
    "throughput_stats",
    "tile_layer",
]
