"""fb_schema.OneLineOSErrors: the one place every CLI's command group turns an OSError into one line."""

from __future__ import annotations

import errno

import pytest

from fb_schema import OneLineOSErrors


class _Failure(Exception):
    pass


class _Base:
    def __init__(self, exc: Exception | None):
        self.exc = exc

    def invoke(self, ctx):
        if self.exc is not None:
            raise self.exc
        return f"ran {ctx}"


class _Group(OneLineOSErrors, _Base):
    error = _Failure


def test_an_os_error_becomes_the_error_type_with_file_and_reason():
    with pytest.raises(_Failure) as info:
        _Group(PermissionError(errno.EACCES, "Permission denied", "/ro/t.json")).invoke("ctx")
    assert str(info.value) == "/ro/t.json: Permission denied"
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_other_errors_and_results_pass_through():
    assert _Group(None).invoke("ctx") == "ran ctx"
    with pytest.raises(ValueError, match="not an OSError"):
        _Group(ValueError("not an OSError")).invoke("ctx")


def test_error_line_is_the_first_line_or_the_type_name():
    from fb_schema import error_line

    assert error_line(ValueError("net.json: nodes[0]: bad\ndetails")) == "net.json: nodes[0]: bad"
    assert error_line(KeyError()) == "KeyError"
