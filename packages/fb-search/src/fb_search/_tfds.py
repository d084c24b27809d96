"""ImageNet and CIFAR-10 without TensorFlow: our own tfds builders (``array_record`` files, prepared from the
archives the user downloaded; nothing is ever downloaded) read at training time with ``tfds.data_source`` and
grain (random access, so batch ``s`` depends only on ``(seed, s)`` and resuming is exact).

Manual directories:

* ``imagenet2012``: ``ILSVRC2012_img_train.tar`` (one ``<synset>.tar`` of JPEGs per class),
  ``ILSVRC2012_img_val.tar`` (flat JPEGs) and ``imagenet2012_validation_labels.txt`` (one synset per line, for
  the validation images in sorted file-name order, as tfds's own label file). Labels are the index of the synset
  in the sorted list of the training archive's synsets (the usual ImageNet order).
* ``cifar10``: ``cifar-10-python.tar.gz``.

Preprocessing (standard MobileNet): training with augmentation = random-resized crop (scale 0.08-1, ratio
3/4-4/3) + horizontal flip; without augmentation (QuantLab's BB/TQT) and for validation = resize the shorter side
to ``resolution / 0.875`` and center-crop. Images stay in [0, 1] on the 8-bit grid (the network's 8-bit input).
"""

from __future__ import annotations

import functools
import io
import os
import pickle
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IMAGENET_TRAIN, IMAGENET_VAL = "ILSVRC2012_img_train.tar", "ILSVRC2012_img_val.tar"
IMAGENET_VAL_LABELS = "imagenet2012_validation_labels.txt"
CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
CROP_FRACTION = 0.875


@functools.lru_cache(maxsize=1)
def _builders():
    """Define the builders on first use (tensorflow_datasets is imported lazily; it never imports TF here)."""
    import tensorflow_datasets as tfds

    return {"imagenet2012": _imagenet_builder(tfds), "cifar10": _cifar_builder(tfds)}


def _imagenet_builder(tfds):
    class Imagenet2012Fb(tfds.core.GeneratorBasedBuilder):
        """ImageNet 2012 from the manual archives, TF-free."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Initial."}
        MANUAL_DOWNLOAD_INSTRUCTIONS = f"Place {IMAGENET_TRAIN}, {IMAGENET_VAL} and {IMAGENET_VAL_LABELS} here."
        pkg_dir_path = Path(__file__).parent

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(None, None, 3), encoding_format="jpeg"),
                        "label": tfds.features.ClassLabel(num_classes=1000),
                        "file_name": tfds.features.Text(),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            root = Path(dl_manager.manual_dir)
            for name in (IMAGENET_TRAIN, IMAGENET_VAL, IMAGENET_VAL_LABELS):
                if not (root / name).is_file():
                    raise FileNotFoundError(f"{root / name}: missing (imagenet2012 manual dir)")
            with tarfile.open(root / IMAGENET_TRAIN) as tar:
                synsets = sorted(Path(m.name).stem for m in tar.getmembers() if m.name.endswith(".tar"))
            return {
                "train": self._generate_examples("train", root, synsets),
                "validation": self._generate_examples("validation", root, synsets),
            }

        def _generate_examples(self, split, root, synsets):
            yield from (_imagenet_train if split == "train" else _imagenet_val)(root, synsets)

    return Imagenet2012Fb


def _cifar_builder(tfds):
    class Cifar10Fb(tfds.core.GeneratorBasedBuilder):
        """CIFAR-10 from ``cifar-10-python.tar.gz``, TF-free."""

        VERSION = tfds.core.Version("1.0.0")
        RELEASE_NOTES = {"1.0.0": "Initial."}
        MANUAL_DOWNLOAD_INSTRUCTIONS = f"Place {CIFAR_ARCHIVE} here."
        pkg_dir_path = Path(__file__).parent

        def _info(self):
            return self.dataset_info_from_configs(
                features=tfds.features.FeaturesDict(
                    {
                        "image": tfds.features.Image(shape=(32, 32, 3), encoding_format="png"),
                        "label": tfds.features.ClassLabel(num_classes=10),
                    }
                ),
                supervised_keys=("image", "label"),
            )

        def _split_generators(self, dl_manager):
            path = Path(dl_manager.manual_dir) / CIFAR_ARCHIVE
            if not path.is_file():
                raise FileNotFoundError(f"{path}: missing (cifar10 manual dir)")
            train = [f"data_batch_{i}" for i in range(1, 6)]
            return {
                "train": self._generate_examples(path, train),
                "test": self._generate_examples(path, ["test_batch"]),
            }

        def _generate_examples(self, path, names):
            yield from _cifar_examples(path, names)

    return Cifar10Fb


def _imagenet_train(root: Path, synsets: list[str]) -> Iterator[tuple[str, dict]]:
    """The training examples: one ``<synset>.tar`` of JPEGs per class inside the training archive."""
    index = {s: i for i, s in enumerate(synsets)}
    with tarfile.open(root / IMAGENET_TRAIN) as outer:
        for member in outer:
            if not member.name.endswith(".tar"):
                continue
            with tarfile.open(fileobj=outer.extractfile(member)) as inner:
                for jpeg in inner:
                    if jpeg.isfile():
                        data = inner.extractfile(jpeg).read()
                        record = {"image": io.BytesIO(data), "label": index[Path(member.name).stem]}
                        yield jpeg.name, {**record, "file_name": Path(jpeg.name).name}


def _imagenet_val(root: Path, synsets: list[str]) -> Iterator[tuple[str, dict]]:
    """The validation examples, labelled by the label file in sorted file-name order."""
    index = {s: i for i, s in enumerate(synsets)}
    labels = (root / IMAGENET_VAL_LABELS).read_text().split()
    with tarfile.open(root / IMAGENET_VAL) as tar:
        members = sorted((m for m in tar.getmembers() if m.isfile()), key=lambda m: Path(m.name).name)
        if len(members) != len(labels):
            raise ValueError(f"{root / IMAGENET_VAL_LABELS}: {len(labels)} labels for {len(members)} images")
        for m, synset in zip(members, labels):
            if synset not in index:
                raise ValueError(f"{root / IMAGENET_VAL_LABELS}: synset {synset!r} not in {IMAGENET_TRAIN}")
            data = tar.extractfile(m).read()
            name = Path(m.name).name
            yield name, {"image": io.BytesIO(data), "label": index[synset], "file_name": name}


def _cifar_examples(path: Path, names: list[str]) -> Iterator[tuple[str, dict]]:
    """The examples of the named pickled batches inside ``cifar-10-python.tar.gz``."""
    with tarfile.open(path) as tar:
        for member in tar:
            if Path(member.name).name in names:
                batch = pickle.load(tar.extractfile(member), encoding="bytes")
                images = batch[b"data"].reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
                for i, (img, label) in enumerate(zip(images, batch[b"labels"])):
                    yield f"{Path(member.name).name}_{i}", {"image": _png(img), "label": int(label)}


def _png(img: np.ndarray) -> io.BytesIO:
    # Encoded here with PIL: tfds encodes numpy images with TensorFlow.
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    buf.seek(0)
    return buf


SPLITS = {"imagenet2012": ("train", "validation"), "cifar10": ("train", "test")}
BUILDER_DIRS = {"imagenet2012": "imagenet2012_fb", "cifar10": "cifar10_fb"}


def prepare(name: str, manual_dir: str | os.PathLike, data_dir: str | os.PathLike) -> Path:
    """Write the ``array_record`` files of ``name`` under ``data_dir`` from the archives in ``manual_dir``."""
    import tensorflow_datasets as tfds

    if name not in SPLITS:
        raise ValueError(f"prepare: unknown data set {name!r}; known: {', '.join(SPLITS)}")
    builder = _builders()[name](data_dir=str(data_dir), file_format="array_record")
    config = tfds.download.DownloadConfig(
        manual_dir=str(manual_dir), download_mode=tfds.download.GenerateMode.REUSE_DATASET_IF_EXISTS
    )
    builder.download_and_prepare(download_config=config)
    return Path(builder.data_dir)


def _resize_crop(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    short = int(round(size / CROP_FRACTION))
    scale = short / min(h, w)
    nh, nw = max(size, int(round(h * scale))), max(size, int(round(w * scale)))
    im = Image.fromarray(img).resize((nw, nh), Image.BILINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    return np.asarray(im.crop((left, top, left + size, top + size)))


def _random_resized_crop(img: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    h, w = img.shape[:2]
    for _ in range(10):
        area = h * w * rng.uniform(0.08, 1.0)
        ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
        cw, ch = int(round(np.sqrt(area * ratio))), int(round(np.sqrt(area / ratio)))
        if 0 < cw <= w and 0 < ch <= h:
            top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
            crop = Image.fromarray(img[top : top + ch, left : left + cw]).resize((size, size), Image.BILINEAR)
            out = np.asarray(crop)
            return out[:, ::-1] if rng.uniform() < 0.5 else out
    return _resize_crop(img, size)


@dataclass
class TfdsDataset:
    """A prepared tfds data set read with ``tfds.data_source`` + grain (same interface as ``Dataset``)."""

    name: str
    data_dir: str
    resolution: int
    num_classes: int
    augment: bool = False
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        import tensorflow_datasets as tfds

        path = Path(self.data_dir) / BUILDER_DIRS[self.name]
        versions = sorted(p for p in path.glob("*") if p.is_dir()) if path.is_dir() else []
        if not versions:
            raise FileNotFoundError(f"{path}: no prepared {self.name} (run `fb-search prepare {self.name}` first)")
        builder = tfds.builder_from_directory(str(versions[-1]))
        train_split, val_split = SPLITS[self.name]
        self._train = builder.as_data_source(train_split)
        self._val = builder.as_data_source(val_split)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.resolution, self.resolution, 3)

    def _eval_pre(self, record) -> tuple[np.ndarray, np.int32]:
        img = record["image"]
        if img.shape[:2] != (self.resolution, self.resolution):
            img = _resize_crop(img, self.resolution)
        return (img.astype(np.float32) / 255.0), np.int32(record["label"])

    def _train_dataset(self, batch_size: int, seed: int):
        import grain

        ds = grain.MapDataset.source(self._train).shuffle(seed=seed).repeat()
        if self.augment:
            res = self.resolution

            def aug(record, rng):
                return _random_resized_crop(record["image"], res, rng).astype(np.float32) / 255.0, np.int32(
                    record["label"]
                )

            ds = ds.random_map(aug, seed=seed)
        else:
            ds = ds.map(self._eval_pre)
        return ds.batch(batch_size, drop_remainder=True)

    def batch(self, step: int, batch_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """The training batch of global step ``step``."""
        return self._train_dataset(batch_size, seed)[step]

    def batches(self, steps: int, batch_size: int, seed: int, start: int = 0) -> Iterator[tuple]:
        """Batches ``start .. steps-1`` with grain's threaded prefetch."""
        import grain

        ds = self._train_dataset(batch_size, seed)[start:steps]
        yield from ds.to_iter_dataset(grain.ReadOptions(num_threads=8, prefetch_buffer_size=4))

    def val_batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        import grain

        ds = grain.MapDataset.source(self._val).map(self._eval_pre).batch(batch_size)
        yield from ds.to_iter_dataset(grain.ReadOptions(num_threads=8, prefetch_buffer_size=4))

    def train_subset(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The first ``n`` training images, preprocessed for evaluation (calibration, BN statistics)."""
        items = [self._eval_pre(self._train[i]) for i in range(min(n, len(self._train)))]
        return np.stack([x for x, _ in items]), np.stack([y for _, y in items])

    def val_subset(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        items = [self._eval_pre(self._val[i]) for i in range(min(n, len(self._val)))]
        return np.stack([x for x, _ in items]), np.stack([y for _, y in items])

    @property
    def num_val(self) -> int:
        return len(self._val)


def default_data_dir() -> str:
    return os.environ.get("TFDS_DATA_DIR", str(Path.home() / "tensorflow_datasets"))
