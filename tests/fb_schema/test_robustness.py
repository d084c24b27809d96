"""Regression tests: NaN step sizes and BN eps are rejected; atomic writes honour the umask."""

import json
import math
import os
import shutil

import pytest
from conftest import FIXTURES

from fb_schema import QuantizedNetwork, write_json


@pytest.fixture
def golden(tmp_path):
    shutil.copy(FIXTURES / "golden_tinynet.json", tmp_path / "net.json")
    shutil.copy(FIXTURES / "golden_tinynet.npz", tmp_path / "net.npz")
    return tmp_path / "net.json", json.loads((tmp_path / "net.json").read_text())


@pytest.mark.parametrize(
    ("field", "edit"),
    [
        ("input.scale", lambda d: d["input"].update(scale=math.nan)),
        ("nodes[0].bn.eps", lambda d: d["nodes"][0]["bn"].update(eps=math.nan)),
        ("input.scale", lambda d: d["input"].update(scale=math.inf)),
    ],
)
def test_nan_or_infinite_scale_and_eps_are_rejected(golden, expect_schema_error, field, edit):
    path, doc = golden
    edit(doc)
    path.write_text(json.dumps(doc))  # json writes NaN / Infinity, which json.loads reads back
    err = expect_schema_error(QuantizedNetwork.load, path, field, "finite")
    assert "nan" in str(err).lower() or "inf" in str(err).lower()


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_atomic_write_honours_the_umask(tmp_path, umask):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "x.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "x.json").stat().st_mode & 0o777 == 0o666 & ~umask
