"""What ``--dry-run`` (and every run, before it trains anything) checks in a pipeline config.

``load_config`` checks the fields' names and types; these are the checks of their values against what the
packages support, each a one-line error naming the config and the field.
"""

from __future__ import annotations

import math

import click

from fbpipe.config import PipelineConfig

STEP_FIELDS = ("float_steps", "search_steps", "finetune_steps")


def check_config(cfg: PipelineConfig, source: str) -> None:
    """Raise a one-line ``click.ClickException`` for the first value the pipeline cannot run with."""

    def fail(field: str, expected: str) -> None:
        raise click.ClickException(f"{source}: {field}: {expected}")

    for name in STEP_FIELDS:
        steps = getattr(cfg, name)
        if steps is not None and (not isinstance(steps, int) or isinstance(steps, bool) or steps < 1):
            fail(name, f"expected a positive number of steps (or None for the recipe's), got {steps!r}")
    for name in ("mus", "latency_mus"):
        for mu in getattr(cfg, name):
            if not _number(mu) or mu < 0:
                fail(name, f"expected finite regularizer strengths >= 0, got {mu!r}")
    for name in ("margins_pp", "knapsack_budgets", "hypervolume_reference"):
        for value in getattr(cfg, name):
            if not _number(value) or value < 0:
                fail(name, f"expected finite non-negative numbers, got {value!r}")
    if not _number(cfg.latency_target_fraction) or cfg.latency_target_fraction <= 0:
        fail("latency_target_fraction", f"expected a finite fraction > 0, got {cfg.latency_target_fraction!r}")
    if not isinstance(cfg.reference_images, int) or cfg.reference_images < 1:
        fail("reference_images", f"expected a positive integer, got {cfg.reference_images!r}")
    if not cfg.targets:
        fail("targets", "expected at least one target")
    _check_targets(cfg, fail)
    _check_search(cfg, fail)


def _number(x) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _check_targets(cfg: PipelineConfig, fail) -> None:
    import fb_profile

    for target in cfg.targets:
        try:
            fb_profile.make_backend(target).check(tuple(sorted(set(cfg.allowed_bits))), 8)
        except ValueError as exc:
            fail("targets" if "bit width" not in str(exc) else "allowed_bits", str(exc))


def _check_search(cfg: PipelineConfig, fail) -> None:
    from fb_schema.topologies import resolve_topology
    from fb_search.recipes import get_recipe

    try:
        get_recipe(cfg.recipe)
    except ValueError as exc:
        fail("recipe", str(exc))
    try:
        resolve_topology(cfg.network, **cfg.network_params)
    except (ValueError, KeyError, TypeError) as exc:
        fail("network", str(exc).strip("'\""))


def load_data(cfg: PipelineConfig, source: str, missing_ok: bool = False):
    """The config's data set (``fb_search.get_data``, or a user FILE.npz read and validated by
    ``fb_search.load_npz_data``); an unknown or malformed one is a one-line error, and so is a known one that is
    not prepared, unless ``missing_ok`` (a dry run may plan before the data is prepared): then the error message
    is returned instead of the data."""
    import fb_search

    try:
        if cfg.data.endswith(".npz"):
            return fb_search.load_npz_data(cfg.data, cfg.data_layout)
        return fb_search.get_data(cfg.data)
    except ValueError as exc:
        raise click.ClickException(f"{source}: data: {str(exc).splitlines()[0]}") from None
    except OSError as exc:
        message = f"{source}: data: {str(exc).splitlines()[0]}"
        if missing_ok:
            return message
        raise click.ClickException(message) from None
