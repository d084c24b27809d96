"""Data sets. ``digits``: scikit-learn's bundled 8x8 digits (real data, no download), a fixed split with 540
validation images, bilinearly resized and put on the 8-bit input grid (values ``k/255``)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

DIGITS_VAL = 540


@dataclass(frozen=True)
class Dataset:
    """In-memory images (NHWC float32 in [0, 1]) and integer labels, with a deterministic batch order.

    Batch ``s`` depends only on ``(seed, s)`` (one shuffle per epoch), so a resumed run sees the same data.
    """

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray
    val_y: np.ndarray
    num_classes: int
    meta: dict = field(default_factory=dict, compare=False)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])

    def batch(self, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The training batch of global step ``step`` (drop-remainder epochs)."""
        n = len(self.train_x)
        per_epoch = n // batch_size
        if per_epoch == 0:
            raise ValueError(f"data {self.name!r}: {n} training images, fewer than one batch of {batch_size}")
        epoch, i = divmod(step, per_epoch)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        idx = perm[i * batch_size : (i + 1) * batch_size]
        return self.train_x[idx], self.train_y[idx]

    def batches(self, steps: int, batch_size: int, seed: int, start: int = 0) -> Iterator[tuple]:
        """Batches ``start .. steps-1``."""
        for s in range(start, steps):
            yield self.batch(s, batch_size, seed)

    def val_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(0, len(self.val_x), batch_size):
            yield self.val_x[i : i + batch_size], self.val_y[i : i + batch_size]

    def train_subset(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` training images (calibration, BN statistics)."""
        return self.train_x[:n], self.train_y[:n]

    def val_subset(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        return self.val_x[:n], self.val_y[:n]

    @property
    def num_val(self) -> int:
        return len(self.val_x)


def load_digits_data(resolution: int = 16, seed: int = 0) -> Dataset:
    """scikit-learn's digits: 1,257 training and 540 validation images at ``resolution`` x ``resolution`` x 1.

    Args:
      resolution: output size (bilinear resize of the 8x8 originals).
      seed: the split (stratified; seed 0 is the split every recipe and test uses).

    Example:
        >>> data = load_digits_data()
        >>> data.train_x.shape, data.val_x.shape
        ((1257, 16, 16, 1), (540, 16, 16, 1))
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    if resolution < 8:
        raise ValueError(f"resolution: expected at least 8, got {resolution}")
    bunch = load_digits()
    x = bunch.images.astype(np.float32)[..., None] / 16.0
    if resolution != 8:
        x = np.asarray(jax.image.resize(jnp.asarray(x), (len(x), resolution, resolution, 1), "bilinear"))
    x = np.round(np.clip(x, 0.0, 1.0) * 255.0).astype(np.float32) / 255.0
    y = bunch.target.astype(np.int32)
    tx, vx, ty, vy = train_test_split(x, y, test_size=DIGITS_VAL, random_state=seed, stratify=y)
    return Dataset("digits", tx, ty, vx, vy, 10, {"resolution": resolution, "seed": seed})


DATASETS = ("digits", "cifar10", "imagenet2012")


def get_data(name: str, data_dir: str | None = None, resolution: int | None = None, augment: bool = False, **kw):
    """A data set by name: ``digits`` (in memory), or a prepared ``cifar10`` / ``imagenet2012`` under
    ``data_dir`` (default ``$TFDS_DATA_DIR`` or ``~/tensorflow_datasets``), never downloaded."""
    if name == "digits":
        return load_digits_data(resolution or 16, **kw)
    if name in ("cifar10", "imagenet2012"):
        from fb_search._tfds import TfdsDataset, default_data_dir

        res = resolution or (32 if name == "cifar10" else 224)
        classes = 10 if name == "cifar10" else 1000
        return TfdsDataset(name, data_dir or default_data_dir(), res, classes, augment)
    raise ValueError(f"unknown data set {name!r}; known: {', '.join(DATASETS)}")
