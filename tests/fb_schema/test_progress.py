"""fb_schema.progress: the line printer every package's long loops use where stderr is not a terminal, and the
choice between it, the caller's bar and silence."""

from __future__ import annotations

import sys

from fb_schema import LineProgress, progress


class _Bar:
    def __init__(self, iterable, **kwargs):
        self.iterable, self.kwargs = iterable, kwargs


def test_lines_every_twentieth_step_with_the_postfix(capsys, monkeypatch):
    monkeypatch.delenv("FB_NO_PROGRESS", raising=False)
    p = progress(range(40), desc="loop", unit="point", bar=_Bar)
    assert isinstance(p, LineProgress)  # pytest's stderr is no terminal
    for i in p:
        p.set_postfix(loss=f"{i:.1f}")
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1] for line in lines] == [f"{2 * i}/40" for i in range(1, 21)]
    assert lines[-1].startswith("loop: 40/40 points (100%) ") and lines[-1].endswith(" loss=39.0")


def test_no_progress_silences_and_a_terminal_gets_the_bar(capsys, monkeypatch):
    monkeypatch.setenv("FB_NO_PROGRESS", "1")
    list(progress(range(5), desc="quiet", bar=_Bar))
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("FB_NO_PROGRESS", "0")
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    bar = progress([1, 2, 3], desc="tty", unit="point", bar=_Bar)
    assert isinstance(bar, _Bar) and bar.kwargs == {"total": 3, "desc": "tty", "leave": False, "unit": "point"}
    assert isinstance(progress([1], desc="no bar"), LineProgress)  # without a bar class: lines on a terminal too


def test_updated_by_hand_without_a_total(capsys, monkeypatch):
    monkeypatch.delenv("FB_NO_PROGRESS", raising=False)
    p = progress(desc="hand")
    p.update(3)
    assert capsys.readouterr().err.startswith("hand: 3 steps ")
