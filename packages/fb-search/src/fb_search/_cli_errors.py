"""One-line errors for file-system failures in every ``fb-search`` command (read-only output, full disk)."""

from __future__ import annotations

import click

from fb_schema import OneLineOSErrors


class Group(OneLineOSErrors, click.Group):
    """A click group whose commands report an ``OSError`` as ``Error: <file>: <reason>``, not a traceback."""

    error = click.ClickException
