"""Fold BatchNorm + quantizer into integer thresholds in the accumulator domain, exactly.

The activation of a hidden channel is a function ``f(A)`` of its integer accumulator ``A`` in
``0 .. acc_max`` (the layout is in :mod:`hwqnn.bundle`). Rather than deriving a closed form and
worrying about float rounding at ties, the folder *evaluates* ``f`` at every ``A`` (in chunks,
with the very float operations the model uses) and reads the thresholds off the table:

* ``f`` non-decreasing (BatchNorm gamma > 0): ``flip = 0`` and ``T_i = min{A : f(A) >= i}``.
* ``f`` non-increasing (gamma < 0): ``flip = 1``, and in ``A' = acc_max - A`` the same rule.
* ``f`` constant (gamma = 0): ``flip = 0``; thresholds are 0 (always met) or ``acc_max + 1``.

In each monotone case ``T_i`` equals the number of accumulator values whose code is below
``i``, which is what is counted. A channel that is not monotone cannot be folded: an error names
the layer and channel.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hwqnn.errors import InputError


class FoldError(InputError):
    """A layer's activation cannot be represented exactly by thresholds."""


CodeFn = Callable[[np.ndarray], np.ndarray]


def fold_thresholds(
    code_fn: CodeFn,
    acc_max: int,
    out_bits: int,
    channels: int,
    name: str = "layer",
    chunk: int = 4096,
) -> tuple[np.ndarray, np.ndarray]:
    """Thresholds ``int64[channels, 2**out_bits - 1]`` and flips ``uint8[channels]``.

    ``code_fn(acc)`` maps accumulator values ``int64[n]`` to output codes ``[n, channels]``.
    """
    levels = 2**out_bits
    below = np.zeros((channels, levels - 1), dtype=np.int64)
    rises = np.zeros(channels, dtype=bool)
    falls = np.zeros(channels, dtype=bool)
    prev_last: np.ndarray | None = None
    ks = np.arange(1, levels, dtype=np.int64)
    for start in range(0, acc_max + 1, chunk):
        acc = np.arange(start, min(start + chunk, acc_max + 1), dtype=np.int64)
        codes = np.asarray(code_fn(acc)).astype(np.int64)
        if codes.shape != (len(acc), channels):
            raise FoldError(
                f"{name}: code table has shape {codes.shape}, not {(len(acc), channels)}"
            )
        if codes.min() < 0 or codes.max() >= levels:
            raise FoldError(f"{name}: activation codes outside 0..{levels - 1}")
        if prev_last is not None:
            codes_ext = np.concatenate([prev_last[None, :], codes], axis=0)
        else:
            codes_ext = codes
        d = np.diff(codes_ext, axis=0)
        rises |= (d > 0).any(axis=0)
        falls |= (d < 0).any(axis=0)
        below += (codes[:, :, None] < ks[None, None, :]).sum(axis=0)
        prev_last = codes[-1]
    bad = np.flatnonzero(rises & falls)
    if bad.size:
        raise FoldError(
            f"{name}: channel {int(bad[0])} is not monotone in the accumulator "
            f"({bad.size} channel(s)); it cannot be folded into thresholds"
        )
    return below, falls.astype(np.uint8)


def apply_thresholds(
    acc: np.ndarray, thresholds: np.ndarray, flip: np.ndarray, acc_max: int
) -> np.ndarray:
    """Output codes of accumulators ``acc[..., C]`` (see the bundle docstring for the rule)."""
    a = np.where(flip.astype(bool), acc_max - acc, acc)
    return (a[..., None] >= thresholds).sum(axis=-1, dtype=np.int64)
