"""Read array names, dtypes and shapes out of an ``.npz`` file with the standard library only."""

from __future__ import annotations

import ast
import os
import struct
import zipfile
from pathlib import Path

from fb_schema._errors import SchemaError


def npz_shapes(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """``{key: (dtype descr, shape)}`` for every array in an npz archive (headers only, no data read)."""
    path = Path(path)
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise SchemaError(str(path), "<file>", f"a readable .npz archive ({exc})") from None
    out: dict[str, tuple[str, tuple[int, ...]]] = {}
    with archive:
        for name in archive.namelist():
            if not name.endswith(".npy"):
                continue
            with archive.open(name) as fh:
                out[name[: -len(".npy")]] = _npy_header(fh.read(1024), f"{path}", name)
    return out


def _npy_header(head: bytes, source: str, member: str) -> tuple[str, tuple[int, ...]]:
    if head[:6] != b"\x93NUMPY":
        raise SchemaError(source, member, "an .npy member (bad magic)")
    major = head[6]
    if major == 1:
        (length,), start = struct.unpack("<H", head[8:10]), 10
    else:
        (length,), start = struct.unpack("<I", head[8:12]), 12
    try:
        header = ast.literal_eval(head[start : start + length].decode("latin1"))
        return str(header["descr"]), tuple(int(d) for d in header["shape"])
    except (ValueError, SyntaxError, KeyError, TypeError):
        raise SchemaError(source, member, "a valid .npy header") from None
