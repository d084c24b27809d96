"""Regression tests: a corrupted newest step checkpoint falls back to the older one."""

import numpy as np
import pytest
from flax import nnx

from fb_schema.topologies import tinynet
from fb_search import OptSpec, QNet, load_digits_data, predict, train


@pytest.mark.slow
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


@pytest.mark.slow
def test_train_float_refuses_to_overwrite_a_checkpoint_without_force(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from fb_search._cli import main

    monkeypatch.delenv("FB_NO_PROGRESS", raising=False)
    existing = tmp_path / "checkpoints" / "float-s0"
    existing.mkdir(parents=True)
    (existing / "meta.json").write_text("{}")
    args = ["train-float", "--network", "tinynet", "--steps", "2", "--out", str(tmp_path), "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 1
    assert r.output.strip() == f"Error: {existing}: a checkpoint exists already (use --force to overwrite it)"
    assert (existing / "meta.json").read_text() == "{}"
    r = CliRunner().invoke(main, [*args, "--force"])
    assert r.exit_code == 0, r.output
    assert '"val_accuracy"' in (existing / "meta.json").read_text()


def test_training_progress_is_one_line_per_n_steps_in_logs(capfd, monkeypatch):
    monkeypatch.delenv("FB_NO_PROGRESS", raising=False)
    data = load_digits_data(resolution=8)
    spec = OptSpec(kind="sgd", lr=0.05, schedule="constant", batch_size=32)
    train(QNet(tinynet(), "float", rngs=nnx.Rngs(0)), data, spec, 40, 0, desc="tiny", log_every=1)
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("tiny: ")]
    assert [line.split()[1] for line in lines] == [f"{2 * i}/40" for i in range(1, 21)]
    assert "loss=" in lines[-1] and "\r" not in err
    monkeypatch.setenv("FB_NO_PROGRESS", "1")
    train(QNet(tinynet(), "float", rngs=nnx.Rngs(0)), data, spec, 4, 0, desc="tiny")
    assert "tiny: " not in capfd.readouterr().err
