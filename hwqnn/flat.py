"""The flat file: a bundle laid out for the C library in ``sw/`` (format in :mod:`hwqnn.bundle`).

:func:`to_bytes` and :func:`write` produce it from a validated :class:`~hwqnn.bundle.Bundle`;
:func:`from_bytes` reads one back (with the C loader's checks), so the format is tested in both
directions from Python as well as from C.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np

from hwqnn import atomic
from hwqnn.bundle import Bundle, BundleError, Layer, validate, words_for

MAGIC = b"HWQNNFLT"
VERSION = 1
_HEADER = struct.Struct("<8s6I")
_RECORD = struct.Struct("<8I")
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bits: the flat file's checksum (a byte loop: tens of ms for a demo-size net)."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def to_bytes(bundle: Bundle) -> bytes:
    """The flat file's bytes for ``bundle`` (validated first)."""
    validate(bundle)
    layers = bundle.dense("the C library")
    first = layers[0]
    parts = [
        _HEADER.pack(MAGIC, VERSION, len(layers), first.in_features, first.in_bits,
                     bundle.num_classes, 0)
    ]  # fmt: skip
    for ly in layers:
        parts.append(
            _RECORD.pack(ly.in_features, ly.out_features, ly.in_bits, ly.w_bits, ly.out_bits,
                         words_for(ly.in_features), 0, 0)
        )  # fmt: skip
    for ly in layers:
        parts.append(np.ascontiguousarray(ly.weights, dtype="<u8").tobytes())
        if not ly.is_last:
            assert ly.thresholds is not None and ly.flip is not None
            parts.append(np.ascontiguousarray(ly.thresholds, dtype="<i8").tobytes())
            flip = np.zeros(-(-ly.out_features // 8) * 8, dtype=np.uint8)
            flip[: ly.out_features] = ly.flip
            parts.append(flip.tobytes())
    body = b"".join(parts)
    return body + struct.pack("<Q", fnv1a64(body))


def write(bundle: Bundle, path: str | os.PathLike[str]) -> Path:
    """Write the flat file atomically."""
    data = to_bytes(bundle)
    return atomic.write_bytes(path, lambda f: f.write(data))


def from_bytes(data: bytes, where: str = "<memory>") -> Bundle:
    """Read a flat file back into a :class:`Bundle` (classes are named ``c0..``: the flat file
    carries no names). Raises :class:`BundleError` naming the field."""

    def bad(fld: str, expected: object, found: object) -> BundleError:
        return BundleError(f"{where}: field '{fld}': expected {expected}, found {found}")

    if len(data) < _HEADER.size + 8 or data[:8] != MAGIC:
        raise bad("magic", "an hwqnn flat file (HWQNNFLT)", "other bytes")
    _, version, n_layers, in_f, in_bits, classes, _ = _HEADER.unpack_from(data)
    if version != VERSION:
        raise bad("version", VERSION, version)
    (checksum,) = struct.unpack_from("<Q", data, len(data) - 8)
    if fnv1a64(data[:-8]) != checksum:
        raise bad("checksum", "the FNV-1a of the content", "another value")
    if not 1 <= n_layers <= 256 or len(data) < _HEADER.size + n_layers * _RECORD.size + 8:
        raise bad("n_layers", "1..256 and a complete layer table", n_layers)
    records = [_RECORD.unpack_from(data, _HEADER.size + i * _RECORD.size) for i in range(n_layers)]
    off = _HEADER.size + n_layers * _RECORD.size
    layers: list[Layer] = []
    for i, (k, o, ka, kw, ko, words, r0, r1) in enumerate(records):
        if words != words_for(k) or r0 or r1:
            raise bad(f"layer{i}.words", words_for(k), words)
        size = o * kw * words * 8
        n_t = 2**ko - 1 if ko else 0
        fpad = -(-o // 8) * 8 if ko else 0
        if off + size + o * n_t * 8 + fpad > len(data) - 8:
            raise bad("payload", "the bytes the layer table implies", f"{len(data)} bytes")
        w = np.frombuffer(data, "<u8", o * kw * words, off).astype(np.uint64).reshape(o, kw, words)
        off += size
        t = f = None
        if ko:
            t = np.frombuffer(data, "<i8", o * n_t, off).astype(np.int64).reshape(o, n_t)
            off += o * n_t * 8
            f = np.frombuffer(data, np.uint8, o, off).copy()
            if any(data[off + o : off + fpad]):
                raise bad(f"layer{i}.flip", "zero padding", "a non-zero pad byte")
            off += fpad
        layers.append(Layer(k, o, ka, kw, ko, w, t, f))
    if off != len(data) - 8:
        raise bad("payload", f"{off + 8} bytes", f"{len(data)} bytes")
    table = (layers[0].in_features, layers[0].in_bits, layers[-1].out_features)
    if (in_f, in_bits, classes) != table:
        raise bad("in_features/in_bits/classes", "the layer table's", (in_f, in_bits, classes))
    b = Bundle(tuple(layers), (in_f,), tuple(f"c{i}" for i in range(classes)))
    validate(b, where)
    return b
