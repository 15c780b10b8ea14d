"""A weighted layer's activation, as a type: what turns its accumulators into its outputs.

* :class:`Thresholds` (hidden layers): output code ``sum_i [A' >= T[r, i]]`` with ``A' = C*K - A``
  where ``flip[r]`` is set and ``A`` otherwise, ``2**bits - 1`` ascending thresholds per row, in
  the accumulator domain (the rule of :mod:`hwqnn.bundle`'s docstring);
* :class:`Scores` (the last layer): the integer class score ``scale[o]*gain*A + offset[o]``:
  the dot product of the values, times a per-class scale if there is one, plus the score bias,
  signed (``2*A - C*K`` for odd-level nets).

Every implementation (golden, RTL, GPU, C, QONNX, the op counter) asks which one a layer has in
one place, through :attr:`hwqnn.layers.dense.Layer.act`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from hwqnn.fold import apply_thresholds


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


@dataclass(frozen=True, eq=False)
class Scores:
    """Signed integer class scores ``scale[o] * gain * A + offset[o]`` (``offset`` int64
    ``[out]``: the scaled dot-product offset and the score bias,
    :meth:`hwqnn.layers.dense.Layer.score_offsets`; ``scale`` int64 ``[out]`` of positive
    integers, or ``None`` for 1)."""

    gain: int
    offset: np.ndarray
    scale: np.ndarray | None = None
    levels: ClassVar[int] = 0  # no thresholds, no compares

    def is_plain(self, acc_max: int) -> bool:
        """The scores are ``2*A - C*K`` (odd levels, no bias): hardware needs no offset table."""
        return self.scale is None and self.gain == 2 and bool(np.all(self.offset == -acc_max))

    def bounds(self, acc_max: int) -> tuple[int, int]:
        """The least and the greatest score over accumulators ``0 .. acc_max``."""
        if self.offset.size == 0:
            return 0, 0
        if self.scale is None:
            return int(self.offset.min()), self.gain * acc_max + int(self.offset.max())
        top = [m * self.gain * acc_max + o
               for m, o in zip(self.scale.tolist(), self.offset.tolist(), strict=True)]  # fmt: skip
        return int(self.offset.min()), max(top)

    def out_width(self, acc_max: int) -> int:
        """Bits of a signed score (``acc_max.bit_length() + 1`` for ``2*A - C*K``)."""
        lo, hi = self.bounds(acc_max)
        return max(1, max(-lo - 1, hi, 0).bit_length()) + 1

    def apply(self, acc: np.ndarray, acc_max: int) -> np.ndarray:
        gained = self.gain * acc
        return (gained if self.scale is None else self.scale * gained) + self.offset


Activation = Thresholds | Scores
