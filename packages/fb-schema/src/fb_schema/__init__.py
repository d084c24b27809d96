"""fb_schema: the vocabulary every Free Bits package speaks.

Layer types, precision pairs, network configurations, latency tables and the trained-network artifact, each with
a JSON form that loaders validate field by field (``SchemaError("<file>: <field.path>: <expected>")``).
Standard library only. Paper: Rutishauser, Conti, Benini, "Free Bits: Latency Optimization of Mixed-Precision
Quantized Neural Networks on the Edge", arXiv 2307.02894.
"""

from fb_schema._errors import MissingLatencyError, SchemaError
from fb_schema._grids import ADDER_BITS, grid, max_abs, residual_add_step
from fb_schema._io import (
    OneLineOSErrors,
    canonical_json,
    error_line,
    os_error_message,
    read_json,
    sha256_of,
    write_atomic,
    write_json,
)
from fb_schema._latency_table import LATENCY_TABLE_SCHEMA, LatencyTable, Target
from fb_schema._layer_type import CONFIGURABLE_OPS, NON_CONFIGURABLE_OPS, OPS, LayerType
from fb_schema._netconfig import NET_CONFIG_SCHEMA, LayerConfig, NetConfig
from fb_schema._npz import npz_shapes
from fb_schema._precision import DEFAULT_BITS, Precision, all_pairs, higher
from fb_schema._progress import LineProgress, progress, progress_enabled
from fb_schema._quantized_network import QUANTIZED_NETWORK_SCHEMA, QuantizedNetwork

__version__ = "0.1.0"

__all__ = [
    "ADDER_BITS",
    "CONFIGURABLE_OPS",
    "DEFAULT_BITS",
    "LATENCY_TABLE_SCHEMA",
    "NET_CONFIG_SCHEMA",
    "NON_CONFIGURABLE_OPS",
    "OPS",
    "QUANTIZED_NETWORK_SCHEMA",
    "LayerConfig",
    "LineProgress",
    "LayerType",
    "LatencyTable",
    "MissingLatencyError",
    "NetConfig",
    "OneLineOSErrors",
    "Precision",
    "QuantizedNetwork",
    "SchemaError",
    "Target",
    "all_pairs",
    "canonical_json",
    "error_line",
    "grid",
    "higher",
    "max_abs",
    "npz_shapes",
    "os_error_message",
    "progress",
    "progress_enabled",
    "read_json",
    "residual_add_step",
    "sha256_of",
    "write_atomic",
    "write_json",
]
