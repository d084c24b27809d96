"""Data-parallel training on 8 simulated CPU devices, and exact resume from step checkpoints."""

import json
import os
import subprocess
import sys

import numpy as np
from flax import nnx

from fb_schema.topologies import tinynet
from fb_search import OptSpec, QNet, load_digits_data, predict, train

SCRIPT = """
import json, sys
import jax, numpy as np
from flax import nnx
from fb_schema.topologies import tinynet
from fb_search import OptSpec, QNet, load_digits_data, train
data = load_digits_data(resolution=8)
model = QNet(tinynet(), "bb", rngs=nnx.Rngs(0))
spec = OptSpec(kind="sgd", lr=0.05, schedule="constant", gate_lr=1e-2, batch_size=32)
losses = [train(model, data, spec, 4, s, mu=0.1, search=True, log_every=1)["loss"] for s in range(2)]
print(json.dumps({"devices": jax.device_count(), "losses": losses,
                  "kernel": np.asarray(model.layers["dw1"].kernel[...]).ravel()[:8].tolist()}))
"""


def _run(devices: int) -> dict:
    env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_eight_devices_match_one():
    one, eight = _run(1), _run(8)
    assert one["devices"] == 1 and eight["devices"] == 8
    np.testing.assert_allclose(eight["losses"], one["losses"], rtol=1e-4)
    np.testing.assert_allclose(eight["kernel"], one["kernel"], rtol=1e-4, atol=1e-6)


def test_resume_equals_uninterrupted(tmp_path):
    data = load_digits_data(resolution=8)
    spec = OptSpec(kind="sgd", lr=0.05, momentum=0.9, schedule="cosine", gate_lr=1e-2, batch_size=32)

    def model():
        return QNet(tinynet(), "bb", rngs=nnx.Rngs(0))

    straight = model()
    train(straight, data, spec, 12, 3, mu=0.1, search=True)
    interrupted = model()
    train(interrupted, data, spec, 12, 3, mu=0.1, search=True, ckpt_dir=tmp_path, ckpt_every=4, stop_at=6)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_4", "step_6"]
    resumed = model()  # a fresh process would start from scratch; the checkpoint carries everything
    train(resumed, data, spec, 12, 3, mu=0.1, search=True, ckpt_dir=tmp_path, ckpt_every=4)
    for a, b in zip(nnx.to_flat_state(nnx.state(straight)), nnx.to_flat_state(nnx.state(resumed))):
        np.testing.assert_array_equal(np.asarray(a[1][...]), np.asarray(b[1][...]), err_msg=str(a[0]))
    np.testing.assert_array_equal(predict(straight, data.val_x[:16]), predict(resumed, data.val_x[:16]))
    assert json.dumps(straight.precisions(), default=str) == json.dumps(resumed.precisions(), default=str)
