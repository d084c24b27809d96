"""Regression tests: a corrupted newest step checkpoint falls back to the older one."""

import numpy as np
import pytest
from flax import nnx

from fb_schema.topologies import tinynet
from fb_search import OptSpec, QNet, load_digits_data, predict, train


def test_corrupted_newest_step_checkpoint_falls_back_to_the_older_one(tmp_path):
    data = load_digits_data(resolution=8)
    spec = OptSpec(kind="sgd", lr=0.05, momentum=0.9, schedule="cosine", gate_lr=1e-2, batch_size=32)

    def model():
        return QNet(tinynet(), "bb", rngs=nnx.Rngs(0))

    straight = model()
    train(straight, data, spec, 10, 3, mu=0.1, search=True)
    train(model(), data, spec, 10, 3, mu=0.1, search=True, ckpt_dir=tmp_path, ckpt_every=4, stop_at=6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_4", "step_6"]
    for f in (tmp_path / "step_6").rglob("*"):
        if f.is_file():
            f.write_bytes(f.read_bytes()[: len(f.read_bytes()) // 3])  # a torn write
    resumed = model()
    with pytest.warns(UserWarning, match=r"step_6: unreadable step checkpoint .*resuming from step 4"):
        train(resumed, data, spec, 10, 3, mu=0.1, search=True, ckpt_dir=tmp_path, ckpt_every=4)
    np.testing.assert_array_equal(predict(straight, data.val_x[:16]), predict(resumed, data.val_x[:16]))
