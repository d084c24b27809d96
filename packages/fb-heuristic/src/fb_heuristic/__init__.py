"""fb_heuristic: the free-bits heuristic and what comes after it, in pure Python.

Algorithm 1 of Rutishauser, Conti, Benini, "Free Bits: Latency Optimization of Mixed-Precision Quantized
Neural Networks on the Edge" (arXiv 2307.02894): per layer, move to the precision pair that is at least as
precise in input and weight bits and has the lowest profiled latency. Then network latency, Pareto front,
selection by latency target or accuracy margin, a per-layer diff, and an exact latency-budget optimizer
(multiple-choice knapsack over per-layer sensitivities).
"""

from fb_heuristic._diff import LayerDiff, diff, format_diff
from fb_heuristic._free_bits import best_pair, deployable_latency, free_bits, network_latency
from fb_heuristic._knapsack import KnapsackResult, knapsack, knapsack_front
from fb_heuristic._select import Scored, homogeneous, hypervolume, pareto_front, score, select

__version__ = "0.1.0"

__all__ = [
    "KnapsackResult",
    "LayerDiff",
    "Scored",
    "best_pair",
    "deployable_latency",
    "diff",
    "format_diff",
    "free_bits",
    "homogeneous",
    "hypervolume",
    "knapsack",
    "knapsack_front",
    "network_latency",
    "pareto_front",
    "score",
    "select",
]
