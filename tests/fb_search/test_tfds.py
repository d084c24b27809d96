"""TF-free ImageNet / CIFAR-10 preparation on tiny archives built here, and a training step on them."""

import io
import pickle
import sys
import tarfile

import numpy as np
import pytest
from flax import nnx
from PIL import Image

from fb_schema.topologies import mobilenetv1
from fb_search import OptSpec, QNet, get_data, prepare, train

SYNSETS = ("n01440764", "n01443537", "n01484850")


def _jpeg(rng, h, w) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _fake_imagenet(root):
    rng = np.random.default_rng(0)
    with tarfile.open(root / "ILSVRC2012_img_train.tar", "w") as outer:
        for synset in SYNSETS:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as inner:
                for i in range(3):
                    _add(inner, f"{synset}_{i}.JPEG", _jpeg(rng, 40 + 7 * i, 50))
            _add(outer, f"{synset}.tar", buf.getvalue())
    labels = [SYNSETS[2], SYNSETS[0], SYNSETS[1], SYNSETS[0]]
    with tarfile.open(root / "ILSVRC2012_img_val.tar", "w") as tar:
        for i in range(len(labels)):
            _add(tar, f"ILSVRC2012_val_{i + 1:08d}.JPEG", _jpeg(rng, 45, 38))
    (root / "imagenet2012_validation_labels.txt").write_text("\n".join(labels) + "\n")


def test_imagenet_tiny_archive(tmp_path):
    manual, data_dir = tmp_path / "manual", tmp_path / "tfds"
    manual.mkdir()
    _fake_imagenet(manual)
    prepare("imagenet2012", manual, data_dir)
    assert list((data_dir / "imagenet2012_fb").glob("*/*.array_record*"))
    data = get_data("imagenet2012", data_dir=str(data_dir), resolution=32)
    x, y = data.batch(0, 8, 0)
    assert x.shape == (8, 32, 32, 3) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert sorted(set(y.tolist())) == [0, 1, 2]
    np.testing.assert_array_equal(data.batch(1, 8, 0)[0], data.batch(1, 8, 0)[0])  # random access, exact
    vx, vy = data.val_subset(10)
    assert vx.shape == (4, 32, 32, 3) and sorted(vy.tolist()) == [0, 0, 1, 2]
    model = QNet(mobilenetv1(0.25, 32, 1000), "float", rngs=nnx.Rngs(0))
    metrics = train(model, data, OptSpec(batch_size=8), 1, 0)
    assert np.isfinite(metrics["loss"])
    assert "tensorflow" not in sys.modules  # training never imports TensorFlow


def test_imagenet_missing_labels(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    _fake_imagenet(manual)
    (manual / "imagenet2012_validation_labels.txt").unlink()
    with pytest.raises(FileNotFoundError, match="imagenet2012_validation_labels.txt: missing"):
        prepare("imagenet2012", manual, tmp_path / "tfds")


def test_cifar10_tiny_archive(tmp_path):
    rng = np.random.default_rng(0)
    manual = tmp_path / "manual"
    manual.mkdir()
    with tarfile.open(manual / "cifar-10-python.tar.gz", "w:gz") as tar:
        for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
            batch = {b"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), b"labels": [3, 7]}
            _add(tar, f"cifar-10-batches-py/{name}", pickle.dumps(batch))
    prepare("cifar10", manual, tmp_path / "tfds")
    data = get_data("cifar10", data_dir=str(tmp_path / "tfds"))
    x, y = data.batch(0, 4, 0)
    assert x.shape == (4, 32, 32, 3) and set(y.tolist()) <= {3, 7} and data.num_val == 2
