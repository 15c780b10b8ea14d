"""The flat file: a bundle laid out for the C library in ``sw/`` (format in :mod:`hwqnn.bundle`).

:func:`to_bytes` and :func:`write` produce it from a validated :class:`~hwqnn.bundle.Bundle`;
:func:`from_bytes` reads one back (with the C loader's checks), so the format is tested in both
directions from Python as well as from C.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import NoReturn

import numpy as np

from hwqnn import atomic
from hwqnn.bundle import (
    Bundle,
    BundleError,
    InputQuant,
    Layer,
    NetLayer,
    UnsupportedKindError,
    validate,
    words_for,
)
from hwqnn.layers import Conv2d, MaxPool2d, Window
from hwqnn.layers.activation import Thresholds
from hwqnn.layers.dense import (
    ENC_VERSION,
    MAX_BIAS,
    MAX_FEATURES,
    MAX_SCALE,
    OUT_BITS,
    SCALE_VERSION,
    SUPPORTED_BITS,
)
from hwqnn.layers.encoding import ENCODINGS, ODD, Encoding

MAGIC = b"HWQNNFLT"
# 2 adds the input record (input quantization), 3 the layer kinds (16-field records, conv2d and
# maxpool2d), 4 the encodings (the record's last field) and the score bias, 5 the score scale;
# a file is written with the oldest version that holds the net, so every earlier net's file is
# unchanged
VERSION = 5
_HEADER = struct.Struct("<8s6I")
_INPUT = struct.Struct("<4I")
_RECORD = struct.Struct("<8I")
_RECORD3 = struct.Struct("<16I")
KIND_CODES = {"dense": 0, "conv2d": 1, "maxpool2d": 2}
ENC_CODES = {"odd": 0, "unsigned": 1, "signed": 2}
ENC_OF_CODE = {v: ENCODINGS[k] for k, v in ENC_CODES.items()}
_FNV_OFFSET, _FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def fnv1a64(data: bytes) -> int:
    """FNV-1a, 64 bits: the flat file's checksum (a byte loop: tens of ms for a demo-size net)."""
    h = _FNV_OFFSET
    for b in data:
        h = ((h ^ b) * _FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h


def enc_field(
    in_enc: Encoding, w_enc: Encoding, out_enc: Encoding, bias: bool, scale: bool = False
) -> int:
    """A version-4/5 record's last field: in_enc | w_enc << 2 | out_enc << 4 | bias << 6 |
    scale << 7 (version 5), each encoding coded 0 odd, 1 unsigned, 2 signed."""
    codes = (ENC_CODES[e.name] for e in (in_enc, w_enc, out_enc))
    return sum(c << (2 * k) for k, c in enumerate(codes)) | (int(bias) << 6) | (int(scale) << 7)


def _record3(ly: NetLayer) -> tuple[int, ...]:
    """A layer's version-3/4 record: kind, in, out, in_bits, w_bits, out_bits, rows, cols,
    words, height, width, channels, kernel, stride, padding, and 0 (version 3) or the encodings
    (version 4, :func:`enc_field`; 0 for an odd-level layer)."""
    if isinstance(ly, MaxPool2d):
        w = ly.window
        enc = enc_field(ly.enc, ODD, ly.enc, False)
        return (2, ly.in_size, ly.out_size, ly.bits, 0, ly.bits, 0, 0, 0,
                w.height, w.width, w.channels, w.kernel, w.stride, 0, enc)  # fmt: skip
    (m,) = ly.matrices()
    head = (ly.in_size, ly.out_size, m.in_bits, m.w_bits, m.out_bits,
            m.out_features, m.in_features, words_for(m.in_features))  # fmt: skip
    enc = enc_field(m.in_enc, m.w_enc, m.out_enc, m.has_bias, m.has_scale)
    if isinstance(ly, Conv2d):
        w = ly.window
        return (1, *head, w.height, w.width, w.channels, w.kernel, w.stride, w.pad, enc)
    return (0, *head, 0, 0, 0, 0, 0, 0, enc)


def _matrix_bytes(m: Layer) -> list[bytes]:
    parts = [np.ascontiguousarray(m.weights, dtype="<u8").tobytes()]
    act = m.act
    if isinstance(act, Thresholds):  # scores carry no arrays
        parts.append(np.ascontiguousarray(act.table, dtype="<i8").tobytes())
        flip = np.zeros(-(-m.out_features // 8) * 8, dtype=np.uint8)
        flip[: m.out_features] = act.flip
        parts.append(flip.tobytes())
    if m.bias is not None:  # version 4: the score bias
        parts.append(np.ascontiguousarray(m.bias, dtype="<i8").tobytes())
    if m.score_scale is not None:  # version 5: the score scale
        parts.append(np.ascontiguousarray(m.score_scale, dtype="<i8").tobytes())
    return parts


INT32 = (-(2**31), 2**31 - 1)


def score_range(last: NetLayer) -> tuple[int, int]:
    """The least and greatest score of the last layer (the C library's scores are int32)."""
    (m,) = last.matrices()
    act = m.act
    assert not isinstance(act, Thresholds)
    return act.bounds(m.acc_max)


def to_bytes(bundle: Bundle) -> bytes:
    """The flat file's bytes for ``bundle`` (validated first)."""
    validate(bundle)
    lo, hi = score_range(bundle.layers[-1])
    if lo < INT32[0] or hi > INT32[1]:
        raise UnsupportedKindError(
            f"layer {len(bundle.layers) - 1}: scores reach {lo}..{hi}, beyond the C library's "
            "32-bit scores"
        )
    for i, ly in enumerate(bundle.layers):
        if ly.kind not in KIND_CODES:
            raise UnsupportedKindError(
                f"layer {i} is a {ly.kind!r} layer: the C library runs "
                f"{', '.join(KIND_CODES)} layers"
            )
    layers = bundle.layers
    q = bundle.quant
    dense = all(isinstance(ly, Layer) for ly in layers)
    if any(ly.version >= SCALE_VERSION for ly in layers):
        version = 5
    elif any(ly.version >= ENC_VERSION for ly in layers):
        version = 4
    else:
        version = (1 if q.is_identity else 2) if dense else 3
    parts = [
        _HEADER.pack(MAGIC, version, len(layers), layers[0].in_size, layers[0].in_bits,
                     bundle.num_classes, 0)
    ]  # fmt: skip
    if q.thresholds is not None:
        parts.append(_INPUT.pack(q.raw_bits, q.channels, q.levels, 0))
        parts.append(np.ascontiguousarray(q.thresholds, dtype="<i8").tobytes())
    elif version >= 3:  # the identity: raw values are the codes
        parts.append(_INPUT.pack(q.bits, 0, 0, 0))
    for ly in layers:
        if version >= 3:
            parts.append(_RECORD3.pack(*_record3(ly)))
        else:
            assert isinstance(ly, Layer)
            parts.append(
                _RECORD.pack(ly.in_features, ly.out_features, ly.in_bits, ly.w_bits,
                             ly.out_bits, words_for(ly.in_features), 0, 0)
            )  # fmt: skip
    for ly in layers:
        for m in ly.matrices():
            parts += _matrix_bytes(m)
    body = b"".join(parts)
    return body + struct.pack("<Q", fnv1a64(body))


def write(bundle: Bundle, path: str | os.PathLike[str]) -> Path:
    """Write the flat file atomically."""
    data = to_bytes(bundle)
    return atomic.write_bytes(path, lambda f: f.write(data))


class _Reader:
    """The checks :func:`from_bytes` shares between records: each raises naming the field."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where = data, where

    def bad(self, fld: str, expected: object, found: object) -> BundleError:
        return BundleError(f"{self.where}: field '{fld}': expected {expected}, found {found}")

    def fail(self, fld: str, expected: str, found: object) -> NoReturn:
        raise self.bad(fld, expected, found)

    def encodings(
        self, i: int, field: int, pool: bool, version: int = 4
    ) -> tuple[Encoding, Encoding, Encoding, bool, bool]:
        """A version-4/5 record's encodings field: ``(in_enc, w_enc, out_enc, bias, scale)``."""
        codes = [(field >> (2 * k)) & 3 for k in range(3)]
        top = 8 if version >= SCALE_VERSION else 7
        pool_bad = pool and (codes[1] or codes[2] != codes[0] or field >> 6)
        if field >> top or 3 in codes or pool_bad:
            raise self.bad(f"layer{i}.encodings", "in | w << 2 | out << 4 | bias << 6 | scale "
                           "<< 7 (version 5), each 0..2 (a max-pool: w 0, out = in, no bias or "
                           "scale)", field)  # fmt: skip
        e = [ENC_OF_CODE[c] for c in codes]
        return e[0], e[1], e[2], bool((field >> 6) & 1), bool(field >> 7)

    def matrix(
        self, i: int, off: int, rec: tuple[int, ...], enc: int = 0, version: int = 4
    ) -> tuple[Layer, int]:
        """The arrays of a matrix record ``(cols, rows, in_bits, w_bits, out_bits, words)`` at
        ``off`` (``enc``: its version-4/5 encodings field), after checking that the file holds
        them; and the offset after them."""
        data = self.data
        k, o, ka, kw, ko, words = rec
        in_enc, w_enc, out_enc, bias, scale = self.encodings(i, enc, pool=False, version=version)
        if words != words_for(k):
            raise self.bad(f"layer{i}.words", words_for(k), words)
        if not (1 <= k <= MAX_FEATURES and 1 <= o <= MAX_FEATURES and kw in SUPPORTED_BITS
                and ko in (0, *OUT_BITS)):  # fmt: skip
            raise self.bad(f"layer{i}", "a matrix in range", rec)
        size = o * kw * words * 8
        n_t = 2**ko - 1 if ko else 0
        fpad = -(-o // 8) * 8 if ko else 0
        bias_bytes = o * 8 if bias else 0
        scale_bytes = o * 8 if scale else 0
        if off + size + o * n_t * 8 + fpad + bias_bytes + scale_bytes > len(data) - 8:
            raise self.bad("payload", "the bytes the layer table implies", f"{len(data)} bytes")
        w = np.frombuffer(data, "<u8", o * kw * words, off).astype(np.uint64).reshape(o, kw, words)
        off += size
        t = f = None
        if ko:
            t = np.frombuffer(data, "<i8", o * n_t, off).astype(np.int64).reshape(o, n_t)
            off += o * n_t * 8
            f = np.frombuffer(data, np.uint8, o, off).copy()
            if any(data[off + o : off + fpad]):
                raise self.bad(f"layer{i}.flip", "zero padding", "a non-zero pad byte")
            off += fpad
        b = None
        if bias:
            b = np.frombuffer(data, "<i8", o, off).astype(np.int64)
            off += bias_bytes
            if b.size and int(np.abs(b).max()) >= MAX_BIAS:
                raise self.bad(f"layer{i}.bias", f"magnitudes below {MAX_BIAS}", "a larger one")
        sc = None
        if scale:
            sc = np.frombuffer(data, "<i8", o, off).astype(np.int64)
            off += scale_bytes
            if sc.size and not (int(sc.min()) >= 1 and int(sc.max()) < MAX_SCALE):
                raise self.bad(f"layer{i}.scale", f"1..{MAX_SCALE - 1}", "a value outside")
        layer = Layer(k, o, ka, kw, ko, w, t, f, in_enc=in_enc, w_enc=w_enc, out_enc=out_enc,
                      has_bias=bias, bias=b, has_scale=scale, score_scale=sc)  # fmt: skip
        return layer, off

    def layer3(self, i: int, off: int, rec: tuple[int, ...], version: int) -> tuple[NetLayer, int]:
        """A version-3/4 record's layer (its window checked before any size is computed)."""
        kind, k_in, k_out, ka, kw, ko, rows, cols, words, *geo, r0 = rec
        if r0 and version < 4:
            raise self.bad(f"layer{i}.reserved", 0, r0)
        ly: NetLayer
        if kind == 0:
            if any(geo) or (rows, cols) != (k_out, k_in):
                raise self.bad(f"layer{i}.rows/cols", "a dense layer's out/in and no window", rec)
            ly, off = self.matrix(i, off, (cols, rows, ka, kw, ko, words), r0, version)
        elif kind in (1, 2):
            h, w, c, kernel, stride, pad = geo
            window = Window(h, w, c, kernel, stride, pad)
            window.check(f"layer{i}", self.fail)
            if kind == 1:
                m, off = self.matrix(i, off, (cols, rows, ka, kw, ko, words), r0, version)
                ly = Conv2d(window, m)
            else:
                if (kw, rows, cols, words, pad) != (0, 0, 0, 0, 0) or ko != ka:
                    raise self.bad(f"layer{i}.rows", "no matrix on a max-pool layer", rec)
                ly = MaxPool2d(window, ka, self.encodings(i, r0, pool=True, version=version)[0])
        else:
            raise self.bad(f"layer{i}.kind", "0, 1 or 2", kind)
        if (ly.in_size, ly.out_size) != (k_in, k_out):
            raise self.bad(f"layer{i}.in_features/out_features", (ly.in_size, ly.out_size),
                           (k_in, k_out))  # fmt: skip
        return ly, off


def from_bytes(data: bytes, where: str = "<memory>") -> Bundle:
    """Read a flat file back into a :class:`Bundle` (classes are named ``c0..``: the flat file
    carries no names). Raises :class:`BundleError` naming the field."""
    rd = _Reader(data, where)
    bad = rd.bad
    if len(data) < _HEADER.size + 8 or data[:8] != MAGIC:
        raise bad("magic", "an hwqnn flat file (HWQNNFLT)", "other bytes")
    _, version, n_layers, in_f, in_bits, classes, h0 = _HEADER.unpack_from(data)
    if version not in (1, 2, 3, 4, 5):
        raise bad("version", f"1..{VERSION}", version)
    if h0:
        raise bad("reserved", 0, h0)
    (checksum,) = struct.unpack_from("<Q", data, len(data) - 8)
    if fnv1a64(data[:-8]) != checksum:
        raise bad("checksum", "the FNV-1a of the content", "another value")
    table, quant = _HEADER.size, None
    if version >= 2:
        if len(data) < _HEADER.size + _INPUT.size + 8:
            raise bad("input", "a complete input record", f"{len(data)} bytes")
        raw_bits, channels, levels, r0 = _INPUT.unpack_from(data, _HEADER.size)
        table += _INPUT.size
        if version >= 3 and channels == 0:
            if (raw_bits, levels, r0) != (in_bits, 0, 0):
                raise bad("input.raw_bits", f"in_bits ({in_bits}) for the identity", raw_bits)
        else:
            if not 1 <= channels <= in_f or levels != 2**in_bits - 1 or r0:
                raise bad("input.channels/levels", f"1..{in_f}/{2**in_bits - 1}",
                          (channels, levels))  # fmt: skip
            table += channels * levels * 8
            if len(data) < table + 8:
                raise bad("input.thresholds", "the bytes the input record implies", len(data))
            tq = np.frombuffer(data, "<i8", channels * levels, _HEADER.size + _INPUT.size)
            quant = InputQuant(raw_bits, in_bits, tq.astype(np.int64).reshape(channels, levels))
    rec = _RECORD3 if version >= 3 else _RECORD
    if not 1 <= n_layers <= 256 or len(data) < table + n_layers * rec.size + 8:
        raise bad("n_layers", "1..256 and a complete layer table", n_layers)
    records = [rec.unpack_from(data, table + i * rec.size) for i in range(n_layers)]
    off = table + n_layers * rec.size
    layers: list[NetLayer] = []
    for i, r in enumerate(records):
        if version >= 3:
            ly, off = rd.layer3(i, off, r, version)
        else:
            k, o, ka, kw, ko, words, r0, r1 = r
            if r0 or r1:
                raise bad(f"layer{i}.reserved", 0, (r0, r1))
            ly, off = rd.matrix(i, off, (k, o, ka, kw, ko, words))
        layers.append(ly)
    if off != len(data) - 8:
        raise bad("payload", f"{off + 8} bytes", f"{len(data)} bytes")
    in_out = (layers[0].in_size, layers[0].in_bits, layers[-1].out_size)
    if (in_f, in_bits, classes) != in_out:
        raise bad("in_features/in_bits/classes", "the layer table's", (in_f, in_bits, classes))
    shape: tuple[int, ...] = layers[0].in_shape
    if len(shape) == 1:
        # the flat file keeps no image shape for an MLP: per-channel input thresholds get a
        # [1, W, C] stand-in
        ch = quant.channels if quant is not None else 1
        shape = (in_f,) if ch == 1 or in_f % ch else (1, in_f // ch, ch)
    b = Bundle(tuple(layers), shape, tuple(f"c{i}" for i in range(classes)), {}, quant)
    validate(b, where)
    lo, hi = score_range(layers[-1])
    if lo < INT32[0] or hi > INT32[1]:
        fld = "scale" if layers[-1].matrices()[0].has_scale else "bias"
        raise bad(f"layer{len(layers) - 1}.{fld}", "scores within int32", f"{lo}..{hi}")
    return b
