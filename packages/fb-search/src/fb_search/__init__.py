"""fb_search: Bayesian Bits mixed-precision search (original and locked) and TQT fine-tuning in Flax NNX.

Free Bits (Rutishauser, Conti, Benini, arXiv 2307.02894) searches per-layer (b_in, b_wt) with Bayesian Bits
(van Baalen et al., arXiv 2005.07093) as implemented in QuantLab, then fine-tunes the chosen configuration with
generalized TQT (Jain et al., arXiv 1903.08066) and hands a ``QuantizedNetwork`` to deployment.

Example:
    >>> from fb_search import load_digits_data, train_float, search, finetune  # doctest: +SKIP
    >>> data = load_digits_data()  # doctest: +SKIP
    >>> ckpt = train_float("digitsnet", data, None, 0, "runs/digits/checkpoints")  # doctest: +SKIP
    >>> cfg = search("digitsnet", data, ckpt, "locked", 0.03, None, 0, "runs/digits")  # doctest: +SKIP
    >>> acc, artifact = finetune(cfg, ckpt, data, None, 0, "runs/digits/quantized")  # doctest: +SKIP
"""

from fb_search._api import (
    SearchRun,
    evaluate,
    finetune,
    homogeneous,
    layer_sensitivity,
    load_model,
    search,
    search_runs,
    sweep,
    topology_of,
    train_float,
)
from fb_search._checkpoint import load_checkpoint, load_into, save_checkpoint
from fb_search._data import Dataset, get_data, load_digits_data
from fb_search._distributed import data_mesh, initialize, is_main_process, maybe_initialize
from fb_search._export import export_quantized_network, load_quantized_network
from fb_search._import import import_onnx_model
from fb_search._model import MODES, VARIANTS, BBOptions, QNet, check_config, tensor_signed, to_netconfig
from fb_search._npz_data import check_data, data_range, load_npz_data
from fb_search._tfds import prepare
from fb_search._train import OptSpec, accuracy, calibrate, make_optimizer, param_labels, predict, reestimate_bn, train
from fb_search.layers import QAdd, QConv, QLinear, QMaxPool, QPool, activation, depthwise_taps, relu6
from fb_search.quant import QuantRule, QuantRules, QuantTensor

__version__ = "0.1.0"

__all__ = [
    "MODES",
    "VARIANTS",
    "BBOptions",
    "Dataset",
    "OptSpec",
    "QAdd",
    "QConv",
    "QLinear",
    "QNet",
    "QMaxPool",
    "QPool",
    "QuantRule",
    "QuantRules",
    "QuantTensor",
    "activation",
    "accuracy",
    "calibrate",
    "check_data",
    "data_range",
    "import_onnx_model",
    "load_npz_data",
    "topology_of",
    "data_mesh",
    "initialize",
    "is_main_process",
    "maybe_initialize",
    "prepare",
    "check_config",
    "depthwise_taps",
    "evaluate",
    "export_quantized_network",
    "finetune",
    "get_data",
    "homogeneous",
    "layer_sensitivity",
    "load_checkpoint",
    "load_digits_data",
    "load_into",
    "load_model",
    "load_quantized_network",
    "make_optimizer",
    "param_labels",
    "predict",
    "reestimate_bn",
    "relu6",
    "save_checkpoint",
    "SearchRun",
    "search",
    "search_runs",
    "sweep",
    "tensor_signed",
    "to_netconfig",
    "train",
    "train_float",
]
