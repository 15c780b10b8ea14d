"""A weighted layer's activation, as a type: what turns its accumulators into its outputs.

* :class:`Thresholds` (hidden layers): output code ``sum_i [A' >= T[r, i]]`` with ``A' = C*K - A``
  where ``flip[r]`` is set and ``A`` otherwise, ``2**bits - 1`` ascending thresholds per row, in
  the accumulator domain (the rule of :mod:`hwqnn.bundle`'s docstring);
* :class:`Scores` (the last layer): the integer class score ``2*A - C*K``, the dot product of the
  levels, signed.

Every implementation (golden, RTL, GPU, C, QONNX, the op counter) asks which one a layer has in
one place, through :attr:`hwqnn.layers.dense.Layer.act`. A per-class score bias (issue 20) is a
field of :class:`Scores`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hwqnn.fold import apply_thresholds


def score_width(acc_max: int) -> int:
    """Bits of a signed score in ``-acc_max .. acc_max``."""
    return max(1, acc_max.bit_length()) + 1


@dataclass(frozen=True, eq=False)
class Thresholds:
    """``bits``-bit output codes from ``table`` (int64 ``[out, 2**bits - 1]``) and ``flip``
    (uint8 ``[out]``)."""

    table: np.ndarray
    flip: np.ndarray
    bits: int

    @property
    def levels(self) -> int:
        """Thresholds per output (compares per output)."""
        return 2**self.bits - 1

    def out_width(self, acc_max: int) -> int:
        return self.bits

    def apply(self, acc: np.ndarray, acc_max: int) -> np.ndarray:
        return apply_thresholds(acc, self.table, self.flip, acc_max)


@dataclass(frozen=True)
class Scores:
    """Signed integer class scores ``2*A - C*K``."""

    levels: int = 0  # no thresholds, no compares

    def out_width(self, acc_max: int) -> int:
        return score_width(acc_max)

    def apply(self, acc: np.ndarray, acc_max: int) -> np.ndarray:
        return 2 * acc - acc_max


Activation = Thresholds | Scores
