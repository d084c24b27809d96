"""One-line errors for file-system failures in every ``fb-heuristic`` command (read-only output, full disk)."""

from __future__ import annotations

import click

from fb_schema import os_error_message


class Group(click.Group):
    """A click group whose commands report an ``OSError`` as ``Error: <file>: <reason>``, not a traceback."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except OSError as exc:
            raise click.ClickException(os_error_message(exc)) from None
