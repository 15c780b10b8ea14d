"""Builders of hostile bundle files for the regression and fuzz tests: a valid small bundle's
members, rewritten at the level of JSON, ``.npy`` headers or zip structure."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn import bundle as B  # noqa: N812
from hwqnn.layers.encoding import SIGNED, UNSIGNED
from hwqnn.randnet import Encodings, random_bundle


def valid_bundle() -> B.Bundle:
    return random_bundle(0, 70, (33, 20), 5)


def valid_v4_bundle() -> B.Bundle:
    """A version-4 bundle: unsigned input, signed weights and activations, a score bias."""
    encs = Encodings(UNSIGNED, SIGNED, SIGNED, bias=True)
    return random_bundle(0, 70, (33, 20), 5, 2, 2, 8, encodings=encs)


def valid_v5_bundle() -> B.Bundle:
    """A version-5 bundle: the version-4 one with a per-class score scale."""
    encs = Encodings(UNSIGNED, SIGNED, SIGNED, bias=True, scale=True)
    return random_bundle(0, 70, (33, 20), 5, 2, 2, 8, encodings=encs)


def members(b: B.Bundle) -> dict[str, bytes]:
    """The ``.npy`` bytes of each member, as ``np.savez`` writes them."""
    out = {}
    for name, arr in b.arrays().items():
        buf = io.BytesIO()
        np.lib.format.write_array(buf, np.asanyarray(arr), allow_pickle=False)
        out[name + ".npy"] = buf.getvalue()
    return out


def npy(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=False)
    return buf.getvalue()


def npy_header(dtype: str, shape: tuple[int, ...], data: bytes = b"") -> bytes:
    """An .npy file whose header claims ``dtype`` and ``shape``, followed by ``data``."""
    d = {"descr": dtype, "fortran_order": False, "shape": shape}
    h = repr(d).encode("latin1")
    pad = 64 - (10 + len(h) + 1) % 64
    h += b" " * pad + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(h)) + h + data


def zip_bytes(files: dict[str, bytes], method: int = zipfile.ZIP_STORED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return buf.getvalue()


def meta_variant(change: Callable[[dict[str, Any]], None]) -> bytes:
    """The valid bundle with its meta JSON changed by ``change`` (a dict edited in place)."""
    b = valid_bundle()
    meta = b.meta()
    change(meta)
    files = members(b)
    files["meta.npy"] = npy(np.array(json.dumps(meta)))
    return zip_bytes(files)


def meta_text(text: str) -> bytes:
    b = valid_bundle()
    files = members(b)
    files["meta.npy"] = npy(np.array(text))
    return zip_bytes(files)


def member_variant(name: str, data: bytes | None) -> bytes:
    """The valid bundle with member ``name`` replaced (``None``: removed)."""
    files = members(valid_bundle())
    if data is None:
        del files[name]
    else:
        files[name] = data
    return zip_bytes(files)


def patch_central(data: bytes, name: str, **fields: int) -> bytes:
    """Patch a member's entry in the zip's central directory (and its local header where the
    same field exists): ``flag_bits``, ``compress_type``, ``file_size``, ``compress_size``."""
    b = bytearray(data)
    cd_offsets = {"flag_bits": 8, "compress_type": 10, "compress_size": 20, "file_size": 24}
    lh_offsets = {"flag_bits": 6, "compress_type": 8, "compress_size": 18, "file_size": 22}
    fmt = {"flag_bits": "<H", "compress_type": "<H", "compress_size": "<I", "file_size": "<I"}
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(name)
        local = info.header_offset
    pos = b.find(b"PK\x01\x02")
    while pos >= 0:
        n_len = struct.unpack_from("<H", b, pos + 28)[0]
        if b[pos + 46 : pos + 46 + n_len].decode() == name:
            for k, v in fields.items():
                struct.pack_into(fmt[k], b, pos + cd_offsets[k], v)
                struct.pack_into(fmt[k], b, local + lh_offsets[k], v)
            return bytes(b)
        pos = b.find(b"PK\x01\x02", pos + 4)
    raise KeyError(name)


def deflate_bomb(name: str, inflated: int) -> bytes:
    """The valid bundle with ``name`` replaced by a deflated member of ``inflated`` zero bytes
    (after a header claiming a matching uint64 array)."""
    files = members(valid_bundle())
    body = npy_header("<u8", (inflated // 8,)) + bytes(inflated)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for n, d in files.items():
            if n == name:
                z.writestr(n, body, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
            else:
                z.writestr(n, d)
    return buf.getvalue()


def write(tmp: Path, data: bytes, name: str = "bad.npz") -> Path:
    p = tmp / name
    p.write_bytes(data)
    return p
