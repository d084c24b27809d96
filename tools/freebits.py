"""Free Bits end to end: float → Bayesian Bits μ sweep → latency tables → free bits → selection → TQT
fine-tuning → integer DORY export, check and verify → report.

    .venv/bin/python tools/freebits.py configs/demo.py            # what `make demo` runs
    .venv/bin/python tools/freebits.py configs/demo.py --dry-run  # the plan, nothing trained

Every stage skips work whose valid outputs exist under runs/<name>/, so a second run resumes.
"""

from __future__ import annotations

import os
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import click  # noqa: E402
from fbpipe.config import load_config  # noqa: E402

from fb_schema import os_error_message  # noqa: E402

PACKAGES = ("fb-schema", "fb-heuristic", "fb-profile", "fb-search", "fb-deploy")


def _versions() -> str:
    def one(name: str) -> str:
        try:
            return f"{name} {version(name)}"
        except PackageNotFoundError:
            return f"{name} (not installed)"

    return "freebits.py (Free Bits pipeline): " + ", ".join(one(p) for p in PACKAGES)


@click.command(context_settings={"help_option_names": ["-h", "--help"], "show_default": True})
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Default: runs/<name>.")
@click.option("--dry-run", is_flag=True, help="Check every value of the config and the data, print the plan.")
@click.option("--no-progress", is_flag=True, help="No progress bars or progress lines.")
@click.version_option(version=_versions(), message="%(version)s")
def main(config: Path, out: Path | None, dry_run: bool, no_progress: bool) -> None:
    """Run the pipeline described by CONFIG (a Python file with get_config())."""
    cfg = load_config(config)
    out = out or Path("runs") / cfg.name
    if no_progress:
        os.environ["FB_NO_PROGRESS"] = "1"  # read by fb-search and fb-profile (also in worker processes)
    if dry_run:
        from fbpipe.pipeline import plan

        click.echo(plan(cfg, out, str(config)))
        return
    from fbpipe.pipeline import run_pipeline

    import fb_search

    fb_search.maybe_initialize()  # multi-host: before any JAX work
    t0 = time.perf_counter()
    try:
        report = run_pipeline(cfg, out, progress=not no_progress, source=str(config))
    except OSError as exc:  # e.g. a read-only --out
        raise click.ClickException(os_error_message(exc)) from None
    click.secho(f"finished in {time.perf_counter() - t0:.0f} s: {report}", bold=True)


if __name__ == "__main__":
    main()
