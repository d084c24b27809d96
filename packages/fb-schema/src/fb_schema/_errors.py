"""The one error type of the schema."""


class SchemaError(ValueError):
    """A file or object does not follow the schema.

    The message always reads ``"<file>: <field.path>: <expected>"`` so that a user can find the offending
    field without reading a traceback.
    """

    def __init__(self, source: str, field: str, expected: str):
        self.source = source
        self.field = field
        self.expected = expected
        super().__init__(f"{source}: {field}: {expected}")


class MissingLatencyError(LookupError):
    """A latency table has no entry for a (layer type, b_in, b_wt) point."""

    def __init__(self, key: str, b_in: int, b_wt: int | None, table: str = "latency table"):
        self.key, self.b_in, self.b_wt = key, b_in, b_wt
        super().__init__(f"{table}: no latency for {key} at (b_in={b_in}, b_wt={b_wt})")
