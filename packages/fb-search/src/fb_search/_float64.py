"""Float64 reference runs of the search: rounding near 1e-16 instead of float32's 1e-7.

Two programs that compute the same function round the last float32 bits differently (a run alone, and the same
run inside a stacked sweep: other fusions, batched kernels), and 300 steps of stochastic gates amplify that: a
gate that ends near its threshold can end on either side. In float64 the differences stay far below any
threshold margin, so both programs find the same configuration (digitsnet, 5 mu, 300 steps: every layer equal),
which is how ``tests/fb_search/test_sweep_float64.py`` checks the stacked sweep against the sequential one.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from fb_search._data import Dataset

DTYPES = ("float32", "float64")


def check_dtype(dtype: str) -> None:
    """A one-line error for a ``dtype`` that is not float32/float64, or float64 with JAX's 64-bit mode off."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype: expected float32 or float64, got {dtype!r}")
    if dtype == "float64" and not jax.config.jax_enable_x64:
        raise ValueError(
            "dtype float64: JAX's 64-bit mode is off (set JAX_ENABLE_X64=1, or call "
            "jax.config.update('jax_enable_x64', True) before any JAX work)"
        )


def model_in(model: nnx.Module, dtype: str) -> nnx.Module:
    """``model`` with every floating-point variable (parameters, BN statistics, thresholds) cast to ``dtype``."""
    if dtype != "float32":
        state = nnx.state(model)
        nnx.update(
            model, jax.tree.map(lambda v: v.astype(dtype) if jnp.issubdtype(v.dtype, jnp.floating) else v, state)
        )
    return model


def data_in(data: Dataset, dtype: str) -> Dataset:
    """``data`` with its images in ``dtype`` (the convs take operands of one dtype)."""
    if dtype == "float32":
        return data
    return dataclasses.replace(
        data, train_x=data.train_x.astype(np.dtype(dtype)), val_x=data.val_x.astype(np.dtype(dtype))
    )
