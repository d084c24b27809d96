"""Free Bits end to end: float → Bayesian Bits μ sweep → latency tables → free bits → selection → TQT
fine-tuning → integer DORY export, check and verify → report.

    .venv/bin/python tools/freebits.py configs/demo.py            # what `make demo` runs
    .venv/bin/python tools/freebits.py configs/demo.py --dry-run  # the plan, nothing trained

Every stage skips work whose valid outputs exist under runs/<name>/, so a second run resumes.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import click  # noqa: E402
from fbpipe.config import load_config  # noqa: E402


@click.command()
@click.argument("config", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="Default: runs/<name>.")
@click.option("--dry-run", is_flag=True, help="Print the plan and check the inputs; train nothing.")
def main(config: Path, out: Path | None, dry_run: bool) -> None:
    """Run the pipeline described by CONFIG (a Python file with get_config())."""
    cfg = load_config(config)
    out = out or Path("runs") / cfg.name
    if dry_run:
        from fbpipe.pipeline import plan

        try:
            click.echo(plan(cfg, out))
        except ValueError as exc:  # bad data or network for this config: one line, no traceback
            raise click.ClickException(str(exc)) from None
        return
    from fbpipe.pipeline import run_pipeline

    t0 = time.perf_counter()
    report = run_pipeline(cfg, out)
    click.secho(f"finished in {time.perf_counter() - t0:.0f} s: {report}", bold=True)


if __name__ == "__main__":
    main()
