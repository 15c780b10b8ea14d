"""Bounded reading of a bundle's ``.npz``: nothing is inflated or allocated that the zip
directory, the ``.npy`` headers and the bundle's ``meta`` have not first agreed on.

An ``.npz`` is a zip of ``.npy`` members. Reading one the plain way (``np.load``) trusts every
size in the file: a member whose header declares 10^12 elements is allocated, a zip bomb is
inflated. Here:

* the zip directory is read first (its size is bounded by the file's); members must be named
  ``*.npy``, be stored or deflated, not encrypted, and declare an inflated size no larger than
  the file (stored) or :data:`MAX_DEFLATE_RATIO` times their compressed size (deflated);
* ``meta`` is read first, at most :data:`MAX_META_CHARS` characters, and parsed as JSON with a
  nesting limit and no NaN/Infinity;
* every other member must be one that ``meta`` implies, with the exact dtype and shape ``meta``
  implies (checked from its ``.npy`` header before its data is read), and exactly that many bytes
  of data, read into one buffer of that size.

So a load allocates at most what ``meta`` implies, which must itself fit in what the members
declare. Every failure is a :class:`~hwqnn.bundle.BundleError`-style message from the caller's
``fail`` naming the file and the field.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable
from typing import IO, Any, NoReturn

import numpy as np

from hwqnn.errors import InputError

MAX_META_CHARS = 1 << 20  # JSON text of meta
MAX_JSON_DEPTH = 64
MAX_DEFLATE_RATIO = 64  # a real bundle's members compress far less than this
MAX_HEADER_BYTES = 4096  # an .npy header (numpy writes 128 bytes for these arrays)

Fail = Callable[[str, str, object], NoReturn]


def check_members(zf: zipfile.ZipFile, file_size: int, fail: Fail) -> dict[str, zipfile.ZipInfo]:
    """The archive's members by field name (``meta``, ``layer0.weights``, ...), each checked for
    name, duplicates, encryption, compression method and declared size."""
    out: dict[str, zipfile.ZipInfo] = {}
    for info in zf.infolist():
        name = info.filename
        if not name.endswith(".npy") or "/" in name:
            fail(f"zip member {name!r}", "an array member named <field>.npy", "another name")
        field = name[: -len(".npy")]
        if field in out:
            fail(field, "one member", "a duplicate")
        if info.flag_bits & 0x1:
            fail(field, "an unencrypted member", "the encrypted flag")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            fail(field, "a stored or deflated member", f"compression method {info.compress_type}")
        limit = (
            file_size
            if info.compress_type == zipfile.ZIP_STORED
            else MAX_DEFLATE_RATIO * max(info.compress_size, 1)
        )
        if info.file_size > limit or info.compress_size > file_size:
            fail(field, f"a member size within {limit} bytes", f"{info.file_size} bytes declared")
        out[field] = info
    return out


def _header(f: IO[bytes], field: str, fail: Fail) -> tuple[tuple[int, ...], bool, np.dtype]:
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            return fmt.read_array_header_1_0(f, max_header_size=MAX_HEADER_BYTES)  # type: ignore[no-any-return]
        if version == (2, 0):
            return fmt.read_array_header_2_0(f, max_header_size=MAX_HEADER_BYTES)  # type: ignore[no-any-return]
    except Exception as e:  # numpy's header parser raises many kinds on hostile bytes
        # (ValueError, SyntaxError, tokenize.TokenError, ...): all mean "not an .npy header"
        fail(field, "an .npy array header", (str(e).splitlines() or [type(e).__name__])[0][:120])
    fail(field, ".npy format 1.0 or 2.0", f"version {version}")


def read_array(
    zf: zipfile.ZipFile,
    info: zipfile.ZipInfo,
    field: str,
    dtype: np.dtype,
    shape: tuple[int, ...] | None,
    fail: Fail,
    max_bytes: int,
) -> np.ndarray:
    """Read one member: header checked against ``dtype`` and ``shape`` (``None``: any 0-d array
    of ``dtype``'s kind no larger than ``max_bytes``), then exactly its bytes."""
    with zf.open(info) as f:
        got_shape, fortran, got_dtype = _header(f, field, fail)
        if shape is None:
            if got_dtype.kind != dtype.kind or got_shape != ():
                fail(field, f"a 0-d {dtype.kind!r} array", f"{got_dtype} {got_shape}")
        else:
            if got_dtype != dtype:
                fail(field, f"dtype {dtype}", got_dtype)
            if got_shape != shape:
                fail(field, f"shape {shape}", got_shape)
        if fortran and len(got_shape) > 1:
            fail(field, "C order", "Fortran order")
        count = 1
        for d in got_shape:
            count *= d
        nbytes = count * got_dtype.itemsize
        if nbytes > max_bytes:
            fail(field, f"at most {max_bytes} bytes", f"{nbytes}")
        buf = bytearray(nbytes)
        got = f.readinto(buf)  # type: ignore[attr-defined]
        if got != nbytes or f.read(1):
            fail(field, f"{nbytes} bytes of data", "a different length")
    return np.frombuffer(buf, dtype=got_dtype).reshape(got_shape)


def _depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` outside JSON strings."""
    depth = deepest = 0
    in_str = esc = False
    for ch in text:
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
        elif ch == '"':
            in_str = True
        elif ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth -= 1
    return deepest


def _no_constant(name: str) -> NoReturn:
    raise InputError(f"{name} is not JSON")


def read_meta(zf: zipfile.ZipFile, infos: dict[str, zipfile.ZipInfo], fail: Fail) -> Any:
    """``meta``: a 0-d unicode array holding JSON, bounded in size and depth."""
    if "meta" not in infos:
        fail("meta", "JSON text", "nothing")
    arr = read_array(zf, infos["meta"], "meta", np.dtype("<U1"), None, fail, 4 * MAX_META_CHARS)
    text = str(arr[()])
    if _depth(text) > MAX_JSON_DEPTH:
        fail("meta", f"JSON nested at most {MAX_JSON_DEPTH} deep", "deeper nesting")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except ValueError as e:
        fail("meta", "JSON text", str(e)[:120])
