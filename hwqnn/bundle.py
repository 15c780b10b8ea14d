"""The bundle: the one contract between hwqnn's stages, and the one statement of its bit layout.

A bundle is a NumPy ``.npz`` file (loadable with ``np.load(path, allow_pickle=False)``) that
holds a trained quantized MLP as packed bits and integer thresholds. Every consumer (golden
model, Verilog generator, GPU kernels, op counter) reads only this file.

Values and codes
----------------
A ``k``-bit quantity is stored as an unsigned *code* ``c`` in ``0 .. 2**k - 1`` that stands for
the odd integer *level* ``q = 2*c - (2**k - 1)``:

* ``k = 1``: bit 1 means +1, bit 0 means -1. ``sign(0) = +1`` everywhere (training, export,
  golden, RTL, GPU).
* ``k = 2``: codes 0, 1, 2, 3 stand for -3, -1, +1, +3 (in training: -1, -1/3, +1/3, +1).
* ``k = 8`` (the first layer's input): a pixel ``x`` in 0..255 is its own code and stands for
  ``2*x - 255``. This is the BNN paper's bit-plane scheme made exact: bit-plane ``n`` of ``x``
  read as a ±1 vector, weighted by ``2**n``, sums to ``2*x - 255``.

Each bit ``n`` of a code is a ±1 *bit-plane*: ``q = sum_n 2**n * (2*c_n - 1)``. So the dot product
of a ``ka``-bit input with ``kw``-bit weights over fan-in ``K`` is, with ``C = (2**ka-1)(2**kw-1)``,

    s = sum_j q_a[j] * q_w[j] = 2*A - C*K,
    A = sum_n sum_m 2**(n+m) * popcount(XNOR(a_plane[n], w_plane[m])),

and ``A`` (the *accumulator*, 0 .. C*K) is what every implementation computes. Per input element
``j`` the hardware leaf is ``L_j = sum_m 2**m * (w_m[j] ? a[j] : ~a[j])`` (a ``ka``-bit XNOR),
and ``A = sum_j L_j``. For 1-bit weights and activations this is XNOR-popcount.

Packing order
-------------
Input index ``j`` of a plane is bit ``j % 64`` (LSB first) of 64-bit word ``j // 64``. Words are
``uint64``. A row of fan-in ``K`` takes ``ceil(K / 64)`` words per plane.

Padding
-------
The pad bits above ``K`` in the last word are 1 in weights and 0 in inputs, so ``XNOR(pad) = 0``
and a pad bit never adds to ``A``. Hardware that pads ``K`` to a multiple of its SIMD width uses
the same rule.

Thresholds
----------
Hidden layers fold BatchNorm and the activation quantizer into integer thresholds in the
accumulator domain. Per output channel ``o`` there is a flip bit and ``2**k_out - 1`` ascending
thresholds ``T[o, 0..]``:

    A'  = (C*K - A) if flip[o] else A           # flip is set for BatchNorm gamma < 0
    out = sum_i [A' >= T[o, i]]                  # the output code, 0 .. 2**k_out - 1

A threshold of 0 is always met, one of ``C*K + 1`` never (that is how gamma = 0 folds to a
constant). The last layer has no thresholds: its output is the signed integer class score
``s = 2*A - C*K`` and the predicted class is the lowest index of the maximum score.

Flat file (the C library's input)
---------------------------------
``hwqnn flat BUNDLE -o NET`` (:mod:`hwqnn.flat`) writes the same network for ``sw/`` (C99, no
zip or JSON parser needed). Little-endian throughout; every array starts 8-byte aligned::

    header, 32 bytes     char magic[8] = "HWQNNFLT"; u32 version = 1; u32 n_layers;
                         u32 in_features; u32 in_bits (layer 0's); u32 classes; u32 0
    layer table          n_layers records of 8 x u32: in_features, out_features, in_bits,
                         w_bits, out_bits, words = ceil(in_features / 64), 0, 0
    per layer, in order  u64 weights[out][w_bits][words]        (as ``layer{i}.weights``)
                         hidden layers only: i64 thresholds[out][2**out_bits - 1];
                         u8 flip[out], zero-padded to a multiple of 8 bytes
    trailer              u64 FNV-1a-64 of every byte before it

A reader checks the checksum, then every field and the chain between layers (``in_features``
and ``in_bits`` of layer ``i+1`` are ``out_features`` and ``out_bits`` of layer ``i``), then that
the file's length is exactly what the table implies, before it allocates anything.

Fields
------
``meta``                 JSON text (0-d unicode array): schema, version, layers, input, classes.
``layer{i}.weights``     uint64 ``[out, kw, words]``: weight plane ``m`` of row ``o``.
``layer{i}.thresholds``  int64 ``[out, 2**k_out - 1]`` (hidden layers only).
``layer{i}.flip``        uint8 ``[out]`` of 0/1 (hidden layers only).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hwqnn import atomic, npzread
from hwqnn.bundle_schema import SCHEMA, SUPPORTED_BITS, VERSION, check, refuse

WORD_BITS = 64


class BundleError(ValueError):
    """A bundle file is missing, corrupt, foreign or inconsistent. The message names the field."""


# --------------------------------------------------------------------------------------------
# Packing
# --------------------------------------------------------------------------------------------


def words_for(k: int) -> int:
    """Number of 64-bit words that hold ``k`` bits."""
    return -(-k // WORD_BITS)


def code_to_level(code: np.ndarray, bits: int) -> np.ndarray:
    """The odd integer level ``2*c - (2**bits - 1)`` that a code stands for."""
    return 2 * code.astype(np.int64) - (2**bits - 1)


def level_scale(in_bits: int, w_bits: int) -> int:
    """``C = (2**in_bits - 1) * (2**w_bits - 1)``: the largest leaf value of one input element."""
    return (2**in_bits - 1) * (2**w_bits - 1)


def to_planes(codes: np.ndarray, bits: int) -> np.ndarray:
    """Split ``codes[..., K]`` into bit-planes ``[..., bits, K]`` of 0/1 (plane n = bit n)."""
    c = np.asarray(codes)
    if c.size and (c.min() < 0 or c.max() >= 2**bits):
        raise ValueError(f"codes must lie in 0..{2**bits - 1} for {bits}-bit values")
    c = c.astype(np.uint16)
    shifts = np.arange(bits, dtype=np.uint16).reshape((bits, 1))
    return ((c[..., None, :] >> shifts) & 1).astype(np.uint8)


def pack_bits(bits: np.ndarray, pad: int) -> np.ndarray:
    """Pack 0/1 ``bits[..., K]`` into ``uint64[..., ceil(K/64)]``, padding with ``pad`` (0 or 1)."""
    b = np.asarray(bits, dtype=np.uint8)
    k = b.shape[-1]
    padded_k = words_for(k) * WORD_BITS
    if padded_k != k:
        fill = np.full((*b.shape[:-1], padded_k - k), pad, dtype=np.uint8)
        b = np.concatenate([b, fill], axis=-1)
    packed = np.packbits(b, axis=-1, bitorder="little")
    return np.ascontiguousarray(packed).view("<u8").astype(np.uint64, copy=False)


def unpack_bits(words: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_bits`: ``uint64[..., W]`` -> 0/1 ``uint8[..., k]``."""
    w = np.ascontiguousarray(np.asarray(words, dtype="<u8"))
    as_bytes = w.view(np.uint8)
    return np.unpackbits(as_bytes, axis=-1, bitorder="little")[..., :k]


def pack_codes(codes: np.ndarray, bits: int, pad: int) -> np.ndarray:
    """``codes[..., K]`` -> packed planes ``uint64[..., bits, words]``.

    ``pad`` is 1 for weights, 0 for inputs (see the padding rule).
    """
    return pack_bits(to_planes(codes, bits), pad)


def unpack_codes(words: np.ndarray, k: int) -> np.ndarray:
    """Inverse of :func:`pack_codes`: packed planes ``[..., bits, words]`` -> codes ``[..., k]``."""
    planes = unpack_bits(words, k).astype(np.int64)
    bits = planes.shape[-2]
    weights = (1 << np.arange(bits, dtype=np.int64)).reshape((bits, 1))
    return (planes * weights).sum(axis=-2)


# --------------------------------------------------------------------------------------------
# The bundle object
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """One dense layer of a bundle. ``out_bits == 0`` marks the last layer (integer scores)."""

    in_features: int
    out_features: int
    in_bits: int
    w_bits: int
    out_bits: int
    weights: np.ndarray  # uint64 [out, w_bits, words]
    thresholds: np.ndarray | None = None  # int64 [out, 2**out_bits - 1]
    flip: np.ndarray | None = None  # uint8 [out]

    @property
    def is_last(self) -> bool:
        return self.out_bits == 0

    @property
    def scale(self) -> int:
        """``C``: the largest leaf value; the accumulator lies in ``0 .. C * in_features``."""
        return level_scale(self.in_bits, self.w_bits)

    @property
    def acc_max(self) -> int:
        return self.scale * self.in_features

    def weight_codes(self) -> np.ndarray:
        """Unpacked weight codes ``int64[out, in]``."""
        return unpack_codes(self.weights, self.in_features)

    def meta(self) -> dict[str, Any]:
        return {
            "kind": "dense",
            "in_features": self.in_features,
            "out_features": self.out_features,
            "in_bits": self.in_bits,
            "w_bits": self.w_bits,
            "out_bits": self.out_bits,
        }


@dataclass(frozen=True)
class Bundle:
    """A trained network as packed bits and integer thresholds. See the module docstring."""

    layers: tuple[Layer, ...]
    input_shape: tuple[int, ...]
    classes: tuple[str, ...]
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def in_features(self) -> int:
        return self.layers[0].in_features

    @property
    def num_classes(self) -> int:
        return self.layers[-1].out_features

    def arch(self) -> str:
        """A one-line description, e.g. ``784(8b)-256(1b)-256(1b)-10``."""
        parts = [f"{self.in_features}({self.layers[0].in_bits}b)"]
        for layer in self.layers:
            parts.append(
                f"{layer.out_features}" + (f"({layer.out_bits}b)" if not layer.is_last else "")
            )
        return "-".join(parts) + f" w{self.layers[1 if len(self.layers) > 1 else 0].w_bits}"

    def meta(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "version": VERSION,
            "input": {"shape": list(self.input_shape), "bits": self.layers[0].in_bits},
            "classes": list(self.classes),
            "layers": [layer.meta() for layer in self.layers],
            "info": self.info,
        }

    def digest(self) -> str:
        """SHA-256 of the bundle's content (meta and arrays), independent of the file's bytes."""
        h = hashlib.sha256()
        for k, v in sorted(self.arrays().items()):
            h.update(k.encode() + str(v.dtype).encode() + str(v.shape).encode())
            h.update(np.ascontiguousarray(v).tobytes())
        return h.hexdigest()

    def arrays(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {"meta": np.array(json.dumps(self.meta(), sort_keys=True))}
        for i, layer in enumerate(self.layers):
            out[f"layer{i}.weights"] = layer.weights
            if not layer.is_last:
                assert layer.thresholds is not None and layer.flip is not None
                out[f"layer{i}.thresholds"] = layer.thresholds
                out[f"layer{i}.flip"] = layer.flip
        return out


def make_layer(
    weight_codes: np.ndarray,
    in_bits: int,
    w_bits: int,
    out_bits: int,
    thresholds: np.ndarray | None = None,
    flip: np.ndarray | None = None,
) -> Layer:
    """Build a :class:`Layer` from unpacked weight codes ``[out, in]`` (packs them)."""
    out_f, in_f = weight_codes.shape
    layer = Layer(
        in_features=int(in_f),
        out_features=int(out_f),
        in_bits=in_bits,
        w_bits=w_bits,
        out_bits=out_bits,
        weights=pack_codes(weight_codes, w_bits, pad=1),
        thresholds=None if thresholds is None else np.asarray(thresholds, dtype=np.int64),
        flip=None if flip is None else np.asarray(flip, dtype=np.uint8),
    )
    _check_layer(layer, i=-1, where="<memory>")
    return layer


# --------------------------------------------------------------------------------------------
# Validation, save, load
# --------------------------------------------------------------------------------------------


def _expect(cond: bool, where: str, fld: str, expected: object, found: object) -> None:
    if not cond:
        raise BundleError(f"{where}: field '{fld}': expected {expected}, found {found}")


def _check_array(
    arr: np.ndarray, where: str, fld: str, dtype: np.dtype | type, shape: tuple[int, ...]
) -> None:
    _expect(arr.dtype == np.dtype(dtype), where, fld, f"dtype {np.dtype(dtype)}", arr.dtype)
    _expect(arr.shape == shape, where, fld, f"shape {shape}", arr.shape)


def _check_layer(layer: Layer, i: int, where: str) -> None:
    p = f"layer{i}"
    for name in ("in_bits", "w_bits"):
        v = getattr(layer, name)
        _expect(v in SUPPORTED_BITS, where, f"{p}.{name}", f"one of {SUPPORTED_BITS}", v)
    _expect(layer.out_bits in (0, 1, 2, 4), where, f"{p}.out_bits", "0, 1, 2 or 4", layer.out_bits)
    _expect(layer.in_features > 0, where, f"{p}.in_features", "> 0", layer.in_features)
    _expect(layer.out_features > 0, where, f"{p}.out_features", "> 0", layer.out_features)
    shape = (layer.out_features, layer.w_bits, words_for(layer.in_features))
    _check_array(layer.weights, where, f"{p}.weights", np.uint64, shape)
    # pad bits above in_features must be 1 (see the padding rule)
    pad = layer.in_features % WORD_BITS
    if pad:
        high = np.uint64(((1 << 64) - 1) ^ ((1 << pad) - 1))
        ok = bool(np.all((layer.weights[..., -1] & high) == high))
        _expect(ok, where, f"{p}.weights", "pad bits above in_features set to 1", "a 0 pad bit")
    if layer.is_last:
        return
    _expect(layer.thresholds is not None, where, f"{p}.thresholds", "an array", "nothing")
    _expect(layer.flip is not None, where, f"{p}.flip", "an array", "nothing")
    assert layer.thresholds is not None and layer.flip is not None
    n_t = 2**layer.out_bits - 1
    _check_array(layer.thresholds, where, f"{p}.thresholds", np.int64, (layer.out_features, n_t))
    _check_array(layer.flip, where, f"{p}.flip", np.uint8, (layer.out_features,))
    t = layer.thresholds
    in_range = bool(t.size == 0 or (t.min() >= 0 and t.max() <= layer.acc_max + 1))
    _expect(in_range, where, f"{p}.thresholds", f"values in 0..{layer.acc_max + 1}", "outside")
    ascending = bool(np.all(np.diff(t, axis=1) >= 0))
    _expect(ascending, where, f"{p}.thresholds", "ascending per row", "a descending pair")
    _expect(bool(np.all(layer.flip <= 1)), where, f"{p}.flip", "0 or 1", "other values")


def validate(bundle: Bundle, where: str = "<memory>") -> None:
    """Check every field against the schema; raise :class:`BundleError` naming the field."""
    _expect(len(bundle.layers) >= 1, where, "meta.layers", "at least one layer", 0)
    for i, layer in enumerate(bundle.layers):
        _check_layer(layer, i, where)
        last = i == len(bundle.layers) - 1
        _expect(layer.is_last == last, where, f"layer{i}.out_bits", "0 only on the last", layer)
        if i:
            prev = bundle.layers[i - 1]
            _expect(
                layer.in_features == prev.out_features,
                where,
                f"layer{i}.in_features",
                f"{prev.out_features} (layer{i - 1}.out_features)",
                layer.in_features,
            )
            _expect(
                layer.in_bits == prev.out_bits,
                where,
                f"layer{i}.in_bits",
                f"{prev.out_bits} (layer{i - 1}.out_bits)",
                layer.in_bits,
            )
    n_in = int(np.prod(bundle.input_shape))
    _expect(n_in == bundle.in_features, where, "meta.input.shape", bundle.in_features, n_in)
    _expect(
        len(bundle.classes) == bundle.num_classes,
        where,
        "meta.classes",
        f"{bundle.num_classes} names",
        len(bundle.classes),
    )


def save(bundle: Bundle, path: str | os.PathLike[str]) -> Path:
    """Validate and write ``bundle`` atomically (temporary file + rename): no half-written file."""
    path = Path(path)
    validate(bundle, str(path))
    atomic.write_bytes(path, lambda f: np.savez(f, **bundle.arrays()))  # type: ignore[arg-type]
    return path


def load(path: str | os.PathLike[str]) -> Bundle:
    """Load and validate a bundle. Raises :class:`BundleError` with the file and field named.

    ``meta`` is checked against the strict schema (:mod:`hwqnn.bundle_schema`) before any array
    is read, and every array is read bounded by what ``meta`` implies (:mod:`hwqnn.npzread`): a
    corrupt or hostile file is refused without allocating more than a valid one would."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise BundleError(f"{where}: no such bundle file")
    fail = refuse(where, BundleError)
    try:
        size = path.stat().st_size
        with zipfile.ZipFile(path) as zf:
            infos = npzread.check_members(zf, size, fail)
            spec = check(npzread.read_meta(zf, infos, fail), fail)
            expected = spec.arrays()
            for name in infos:
                if name != "meta" and name not in expected:
                    fail(name, "no such array for this meta", "a member")
            arrays = {}
            for name, (dtype, shape) in expected.items():
                if name not in infos:
                    fail(name, f"an array of shape {shape}", "nothing")
                nbytes = int(np.prod(shape, dtype=object)) * dtype.itemsize
                if infos[name].file_size > nbytes + npzread.MAX_HEADER_BYTES + 16:
                    fail(name, f"about {nbytes} bytes", f"{infos[name].file_size} declared")
                arrays[name] = npzread.read_array(zf, infos[name], name, dtype, shape, fail, nbytes)
    except BundleError:
        raise
    except Exception as e:  # zipfile, zlib and numpy raise many kinds on hostile bytes (BadZipFile,
        # zlib.error, struct.error, EOFError, NotImplementedError, ...): all mean "unreadable"
        raise BundleError(
            f"{where}: not a readable bundle (truncated or corrupt .npz: {type(e).__name__}: "
            f"{str(e)[:120]})"
        ) from e
    layers = tuple(
        Layer(
            in_features=ly.in_features,
            out_features=ly.out_features,
            in_bits=ly.in_bits,
            w_bits=ly.w_bits,
            out_bits=ly.out_bits,
            weights=arrays[f"layer{i}.weights"],
            thresholds=arrays.get(f"layer{i}.thresholds"),
            flip=arrays.get(f"layer{i}.flip"),
        )
        for i, ly in enumerate(spec.layers)
    )
    bundle = Bundle(layers, spec.input_shape, spec.classes, dict(spec.info))
    validate(bundle, where)
    return bundle
