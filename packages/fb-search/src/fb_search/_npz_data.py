"""User data: ``FILE.npz`` with ``x_train``, ``y_train``, ``x_val``, ``y_val`` (NHWC, or NCHW with
``layout="nchw"``), validated against the network before anything is trained.

The input quantization range is explicit: the topology's ``input_range`` must contain every value (nothing is
clipped silently); :func:`data_range` gives the range of the data itself for a network that has none yet.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from fb_search._data import Dataset

ARRAYS = ("x_train", "y_train", "x_val", "y_val")


def load_npz_data(path: str | os.PathLike, layout: str = "nhwc", num_classes: int | None = None) -> Dataset:
    """Read and check a user data set (shapes, dtypes, label range); returns NHWC float32 images.

    Raises:
        ValueError: one line naming the file, the array and what was expected.
    """
    path = Path(path)
    if layout not in ("nhwc", "nchw"):
        raise ValueError(f"--layout: expected nhwc or nchw, got {layout!r}")
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable .npz file ({exc})") from None
    with npz:
        missing = [k for k in ARRAYS if k not in npz.files]
        if missing:
            raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; expected {', '.join(ARRAYS)}")
        arrays = {k: npz[k] for k in ARRAYS}
    for split in ("train", "val"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim != 4 or x.dtype.kind not in "fiu":
            raise ValueError(f"{path}: x_{split}: expected a 4-D numeric array (N, H, W, C), got {x.dtype} {x.shape}")
        if y.ndim != 1 or y.dtype.kind not in "iu" or len(y) != len(x):
            raise ValueError(f"{path}: y_{split}: expected {len(x)} integer labels, got {y.dtype} {y.shape}")
        if not np.isfinite(x).all():
            raise ValueError(f"{path}: x_{split}: contains NaN or infinite values")
    if layout == "nchw":
        for split in ("train", "val"):
            arrays[f"x_{split}"] = arrays[f"x_{split}"].transpose(0, 2, 3, 1)
    tx, vx = (np.ascontiguousarray(arrays[k], np.float32) for k in ("x_train", "x_val"))
    if tx.shape[1:] != vx.shape[1:]:
        raise ValueError(f"{path}: x_val: images {vx.shape[1:]} differ from x_train {tx.shape[1:]} (H, W, C)")
    ty, vy = (arrays[k].astype(np.int32) for k in ("y_train", "y_val"))
    classes = int(max(ty.max(initial=0), vy.max(initial=0))) + 1 if num_classes is None else num_classes
    for name, y in (("y_train", ty), ("y_val", vy)):
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"{path}: {name}: labels in [{y.min()}, {y.max()}], expected 0..{classes - 1}")
    return Dataset(str(path), tx, ty, vx, vy, classes, {"layout": layout})


def data_range(data: Dataset) -> tuple[float, float]:
    """(min, max) over the training and validation images."""
    lo = float(min(data.train_x.min(), data.val_x.min()))
    hi = float(max(data.train_x.max(), data.val_x.max()))
    return lo, max(hi, lo + 1e-6)


def check_data(topology, data: Dataset) -> None:
    """Shape, classes and value range of ``data`` against the network (one-line ValueError)."""
    if tuple(data.input_shape) != tuple(topology.input_shape):
        raise ValueError(
            f"data {data.name!r}: images {tuple(data.input_shape)} (H, W, C) do not fit {topology.name} "
            f"{tuple(topology.input_shape)}"
        )
    if data.num_classes > topology.num_classes:
        raise ValueError(f"data {data.name!r}: {data.num_classes} classes, {topology.name} has {topology.num_classes}")
    if isinstance(getattr(data, "train_x", None), np.ndarray):
        lo, hi = data_range(data)
        t_lo, t_hi = topology.input_range
        if lo < t_lo - 1e-6 or hi > t_hi + 1e-6:
            raise ValueError(
                f"data {data.name!r}: values in [{lo:.4g}, {hi:.4g}] fall outside {topology.name}'s input range "
                f"[{t_lo:g}, {t_hi:g}]; they would be clipped by the input quantizer (set the range with "
                "--input-range LO,HI)"
            )
