"""Shared checks of the fb_schema tests."""

import pytest

from fb_schema import SchemaError


def check_schema_error(load, path, field, *fragments) -> SchemaError:
    """``load(path)`` raises a one-line SchemaError for ``field`` whose expectation mentions every fragment."""
    with pytest.raises(SchemaError) as ei:
        load(path)
    err = ei.value
    assert err.source == str(path)
    assert err.field == field
    assert str(err).startswith(f"{path}: {field}: ")
    assert "\n" not in str(err)
    for fragment in fragments:
        assert fragment in err.expected
    return err


@pytest.fixture
def expect_schema_error():
    return check_schema_error
