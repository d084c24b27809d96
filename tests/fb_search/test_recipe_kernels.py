"""The recipes choose the training kernels: the built-in recipes train with the fused kernels, a user's recipe that
says nothing with the plain XLA ones, and finetune/search/train_float build their models that way."""

from __future__ import annotations

import pytest

import fb_search
from fb_search import _api
from fb_search.recipes import get_recipe


@pytest.mark.parametrize(
    "recipe, fused", [("digits", True), ("cifar10", True), ("mnv1_imagenet", True), ("mnv2_imagenet", True)]
)
def test_recipe_kernels(recipe, fused):
    assert _api._kernels(get_recipe(recipe)) == {"fused_kernels": fused, "compute_dtype": "float32"}


def test_user_recipe_without_kernel_names_gets_plain_kernels(tmp_path):
    path = tmp_path / "mine.py"
    path.write_text("COMPUTE_DTYPE = 'bfloat16'\n")
    assert _api._kernels(get_recipe(str(path))) == {"fused_kernels": False, "compute_dtype": "bfloat16"}


@pytest.mark.parametrize(
    "body, message",
    [
        ("COMPUTE_DTYPE = 'fp16'\n", "COMPUTE_DTYPE: expected one of float32, bfloat16, got 'fp16'"),
        ("FUSED_KERNELS = 'yes'\n", "FUSED_KERNELS: expected True or False, got 'yes'"),
    ],
)
def test_bad_recipe_kernels_name_the_file_and_field(tmp_path, body, message):
    path = tmp_path / "bad.py"
    path.write_text(body)
    with pytest.raises(ValueError, match="^recipe .*bad.py: ") as err:
        _api._kernels(get_recipe(str(path)))
    assert str(err.value).endswith(message) and "\n" not in str(err.value)


@pytest.mark.parametrize("fused", [True, False])
def test_train_float_builds_the_recipes_kernels(monkeypatch, tmp_path, digits, fused):
    built = []
    real = _api.QNet

    def spy(*args, **kwargs):
        model = real(*args, **kwargs)
        built.append({name: layer.fast for name, layer in model.layers.items() if hasattr(layer, "fast")})
        return model

    monkeypatch.setattr(_api, "QNet", spy)
    monkeypatch.setattr(get_recipe("digits"), "FUSED_KERNELS", fused)
    fb_search.train_float("digitsnet", digits, 2, 0, tmp_path)
    assert built and set(built[0].values()) == {fused} and len(built[0]) == 7  # the seven convs of digitsnet
