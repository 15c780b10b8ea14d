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
from hwqnn.bundle import Bundle, BundleError, InputQuant, Layer, validate, words_for
from hwqnn.layers.activation import Thresholds

MAGIC = b"HWQNNFLT"
VERSION = 2  # 2 adds the input record (input quantization); identity-input nets are written as 1
_HEADER = struct.Struct("<8s6I")
_INPUT = struct.Struct("<4I")
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
    q = bundle.quant
    parts = [
        _HEADER.pack(MAGIC, 1 if q.is_identity else 2, len(layers), first.in_features,
                     first.in_bits, bundle.num_classes, 0)
    ]  # fmt: skip
    if q.thresholds is not None:
        parts.append(_INPUT.pack(q.raw_bits, q.channels, q.levels, 0))
        parts.append(np.ascontiguousarray(q.thresholds, dtype="<i8").tobytes())
    for ly in layers:
        parts.append(
            _RECORD.pack(ly.in_features, ly.out_features, ly.in_bits, ly.w_bits, ly.out_bits,
                         words_for(ly.in_features), 0, 0)
        )  # fmt: skip
    for ly in layers:
        parts.append(np.ascontiguousarray(ly.weights, dtype="<u8").tobytes())
        act = ly.act
        if isinstance(act, Thresholds):  # scores carry no arrays
            parts.append(np.ascontiguousarray(act.table, dtype="<i8").tobytes())
            flip = np.zeros(-(-ly.out_features // 8) * 8, dtype=np.uint8)
            flip[: ly.out_features] = act.flip
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
    if version not in (1, 2):
        raise bad("version", f"1..{VERSION}", version)
    (checksum,) = struct.unpack_from("<Q", data, len(data) - 8)
    if fnv1a64(data[:-8]) != checksum:
        raise bad("checksum", "the FNV-1a of the content", "another value")
    table, quant = _HEADER.size, None
    if version == 2:
        if len(data) < _HEADER.size + _INPUT.size + 8:
            raise bad("input", "a complete input record", f"{len(data)} bytes")
        raw_bits, channels, levels, r0 = _INPUT.unpack_from(data, _HEADER.size)
        if not 1 <= channels <= in_f or levels != 2**in_bits - 1 or r0:
            raise bad("input.channels/levels", f"1..{in_f}/{2**in_bits - 1}", (channels, levels))
        table += _INPUT.size + channels * levels * 8
        if len(data) < table + 8:
            raise bad("input.thresholds", "the bytes the input record implies", len(data))
        tq = np.frombuffer(data, "<i8", channels * levels, _HEADER.size + _INPUT.size)
        quant = InputQuant(raw_bits, in_bits, tq.astype(np.int64).reshape(channels, levels))
    if not 1 <= n_layers <= 256 or len(data) < table + n_layers * _RECORD.size + 8:
        raise bad("n_layers", "1..256 and a complete layer table", n_layers)
    records = [_RECORD.unpack_from(data, table + i * _RECORD.size) for i in range(n_layers)]
    off = table + n_layers * _RECORD.size
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
    in_out = (layers[0].in_features, layers[0].in_bits, layers[-1].out_features)
    if (in_f, in_bits, classes) != in_out:
        raise bad("in_features/in_bits/classes", "the layer table's", (in_f, in_bits, classes))
    # the flat file keeps no image shape: per-channel input thresholds get a [1, W, C] stand-in
    ch = quant.channels if quant is not None else 1
    shape: tuple[int, ...] = (in_f,) if ch == 1 or in_f % ch else (1, in_f // ch, ch)
    b = Bundle(tuple(layers), shape, tuple(f"c{i}" for i in range(classes)), {}, quant)
    validate(b, where)
    return b
