"""Bit-planes and 64-bit packing: the arithmetic of the bundle's bit layout.

The layout itself (codes, levels, packing order, the padding rule) is stated once, in
:mod:`hwqnn.bundle`; this module implements it for every stage and imports nothing of hwqnn.
"""

from __future__ import annotations

import numpy as np

from hwqnn.errors import InputError

WORD_BITS = 64


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
        raise InputError(f"codes must lie in 0..{2**bits - 1} for {bits}-bit values")
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
