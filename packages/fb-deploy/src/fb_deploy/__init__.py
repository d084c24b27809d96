"""fb_deploy: from a trained QuantizedNetwork to an integer network that DORY runs on PULP microcontrollers.

Integerization (BN and every real scale folded into integer requantization), a bit-exact integer reference
executor, DORY-format ONNX export with golden files, a rule-by-rule checker, an ONNX Runtime twin that verifies
the export bit for bit, and an L2 memory estimate. Paper: Rutishauser, Conti, Benini, "Free Bits: Latency
Optimization of Mixed-Precision Quantized Neural Networks on the Edge", arXiv 2307.02894.
"""

from fb_deploy._adapters import DoryResult, ToolError, dory_command, run_dory
from fb_deploy._agreement import fake_quant_layer, layer_agreement
from fb_deploy._checker import Finding, check_model, errors
from fb_deploy._errors import DeployError, IntegerizationError, OverflowProofError
from fb_deploy._export import build_dory_model, export_dory, read_golden
from fb_deploy._gvsoc import FLOWS, ISA_FLOWS, GvsocTools, run_gvsoc
from fb_deploy._gvsoc_log import ChecksumError, LayerRun, RunLog, parse_run_log
from fb_deploy._integer_network import INTEGER_NETWORK_SCHEMA, IntegerNetwork, IntLayer, grid
from fb_deploy._integerize import integerize
from fb_deploy._memory import LayerMemory, l2_report
from fb_deploy._qdq import build_qdq_model, compare_qdq, export_qdq
from fb_deploy._random import random_quantized_network, tensor_bits
from fb_deploy._reference import integer_logits, run_layers, run_reference
from fb_deploy._single_layer import single_layer_network
from fb_deploy._verify import VerifyReport, verify

__version__ = "0.1.0"

__all__ = [
    "FLOWS",
    "ISA_FLOWS",
    "ChecksumError",
    "DoryResult",
    "GvsocTools",
    "LayerRun",
    "RunLog",
    "ToolError",
    "dory_command",
    "parse_run_log",
    "run_dory",
    "run_gvsoc",
    "INTEGER_NETWORK_SCHEMA",
    "DeployError",
    "Finding",
    "IntLayer",
    "IntegerNetwork",
    "IntegerizationError",
    "LayerMemory",
    "OverflowProofError",
    "VerifyReport",
    "build_dory_model",
    "build_qdq_model",
    "compare_qdq",
    "export_qdq",
    "fake_quant_layer",
    "check_model",
    "errors",
    "export_dory",
    "grid",
    "integer_logits",
    "integerize",
    "l2_report",
    "layer_agreement",
    "random_quantized_network",
    "read_golden",
    "run_layers",
    "run_reference",
    "single_layer_network",
    "tensor_bits",
    "verify",
]
