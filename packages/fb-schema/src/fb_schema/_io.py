"""JSON reading with field-path errors, canonical hashing and atomic writes."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal, overload

from fb_schema._errors import SchemaError


def canonical_json(obj: Any) -> str:
    """The canonical form that every sha256 of the schema is taken over."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))


def sha256_of(obj: Any) -> str:
    """sha256 (hex) of the canonical JSON of ``obj``."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()


def read_json(path: str | os.PathLike) -> Any:
    """Parse a JSON file; a missing or malformed file is a one-line SchemaError."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise SchemaError(str(path), "<file>", f"a readable file ({exc.strerror})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaError(str(path), f"<line {exc.lineno}>", f"valid JSON ({exc.msg})") from None


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename, so no half-written file is left.

    Raises:
        OSError: the directory cannot be created or written (read-only, full); it names ``path`` itself,
            not the temporary file.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise type(exc)(exc.errno, exc.strerror, str(path)) from None
    mode = "wb" if isinstance(data, bytes) else "w"
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp creates 0600; give the mode open() would have given
        with os.fdopen(fd, mode) as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException as exc:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror, str(path)) from None
        raise


def _umask() -> int:
    """The process umask (reading it means setting it; it is set straight back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def error_line(exc: BaseException) -> str:
    """The first line of an error's message, or its type's name where the message is empty."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def os_error_message(exc: OSError) -> str:
    """One line for a file-system error: ``"<file>: <reason>"`` (e.g. a read-only output directory)."""
    if exc.filename is None:
        return error_line(exc)
    return f"{exc.filename}: {exc.strerror or type(exc).__name__}"


class OneLineOSErrors:
    """Mixin for a command group (``click.Group``) whose commands report an ``OSError`` as one line.

    The group's ``invoke`` re-raises it as ``error(os_error_message(exc))``; with ``error = click.ClickException``
    click prints ``Error: <file>: <reason>`` (a read-only output, a full disk), not a traceback. Standard library
    only: the command-line package brings the group class and the error type::

        class Group(OneLineOSErrors, click.Group):
            error = click.ClickException
    """

    error: Callable[[str], Exception]

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)  # type: ignore[misc]  # the group class after this mixin has invoke
        except OSError as exc:
            raise self.error(os_error_message(exc)) from None


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Pretty JSON, written atomically."""
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


_TYPE_NAMES = {
    int: "an integer",
    float: "a number",
    str: "a string",
    bool: "a boolean",
    list: "a list",
    dict: "an object",
}


class Fields:
    """Typed access to one JSON object, raising SchemaError with the field path on every mismatch."""

    def __init__(self, obj: Any, source: str, path: str = ""):
        self.source, self.path = source, path
        if not isinstance(obj, dict):
            raise SchemaError(source, path or "<root>", f"an object, got {type(obj).__name__}")
        self.obj = obj

    def at(self, name: str | int) -> str:
        if isinstance(name, int):
            return f"{self.path}[{name}]"
        return f"{self.path}.{name}" if self.path else name

    def error(self, name: str | int, expected: str) -> SchemaError:
        return SchemaError(self.source, self.at(name), expected)

    def only(self, allowed: set[str]) -> None:
        """Reject fields that the schema does not know."""
        for name in self.obj:
            if name not in allowed:
                raise self.error(name, f"no such field (allowed: {', '.join(sorted(allowed))})")

    def get(self, name: str, kind: type | tuple, *, nullable: bool = False, default: Any = ...) -> Any:
        if name not in self.obj:
            if default is not ...:
                return default
            raise self.error(name, "a required field is missing")
        return check_type(self.obj[name], kind, self.source, self.at(name), nullable=nullable)

    @overload
    def sub(self, name: str, *, nullable: Literal[False] = False) -> Fields: ...

    @overload
    def sub(self, name: str, *, nullable: bool) -> Fields | None: ...

    def sub(self, name: str, *, nullable: bool = False) -> Fields | None:
        """The object at ``name`` as Fields (None only when ``nullable`` and the value is null)."""
        value = self.get(name, dict, nullable=nullable)
        return None if value is None else Fields(value, self.source, self.at(name))

    def items(self, name: str) -> list[tuple[str, Any]]:
        """(path, element) pairs of a list field."""
        values = self.get(name, list)
        return [(f"{self.at(name)}[{i}]", v) for i, v in enumerate(values)]


def check_type(value: Any, kind: type | tuple, source: str, path: str, *, nullable: bool = False) -> Any:
    if value is None and nullable:
        return None
    kinds = kind if isinstance(kind, tuple) else (kind,)
    ok = any(isinstance(value, k) and not (k in (int, float) and isinstance(value, bool)) for k in kinds)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        names = " or ".join(_TYPE_NAMES.get(k, k.__name__) for k in kinds)
        if nullable:
            names += " or null"
        raise SchemaError(source, path, f"{names}, got {json.dumps(value)[:40]}")
    return value


def check_tag(fields: Fields, expected: str) -> None:
    """Check the ``schema`` tag (name and version)."""
    tag = fields.get("schema", str)
    if tag != expected:
        raise fields.error("schema", f"{expected!r}, got {tag!r}")
