"""Progress of long loops: :func:`fb_schema.progress` with a tqdm bar on a terminal, else one plain line every
N steps (readable in logs); ``FB_NO_PROGRESS=1`` turns both off."""

from __future__ import annotations

import functools

from tqdm.auto import tqdm

import fb_schema

progress = functools.partial(fb_schema.progress, bar=tqdm)
