"""What a tensor's codes stand for: one of three encodings, as a type.

A ``k``-bit code ``c`` (``0 .. 2**k - 1``, ``M = 2**k - 1``) stands for the integer value
``gain * c + offset(k)`` (the rule and its arithmetic are stated in :mod:`hwqnn.bundle`):

* :data:`ODD` ``2c - M``: the odd levels of the BNN/QNN papers (every bundle before version 4);
* :data:`UNSIGNED` ``c``: ReLU-style activations, unsigned weights, 8-bit pixels as they are;
* :data:`SIGNED` ``c - 2**(k-1)``: two's complement values ``-2**(k-1) .. 2**(k-1) - 1`` stored
  as offset binary (the code is the two's complement bit pattern with its top bit inverted), so
  codes stay in value order, max-pooling codes pools values, and a code of 0 is the lowest.

A weight encoding also says how each weight bit-plane meets the input codes (:meth:`plane_op`),
which is what keeps every accumulator leaf non-negative and needs no per-frame input sum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PlaneOp = str
"""``"xnor"``, ``"and"`` or ``"nor"``: how input plane bits ``a`` meet weight plane bits ``w``."""


@dataclass(frozen=True)
class Encoding:
    """One of :data:`ODD`, :data:`UNSIGNED`, :data:`SIGNED` (compare with ``is`` or ``==``)."""

    name: str
    gain: int  # value = gain * code + offset(bits)

    def offset(self, bits: int) -> int:
        if self.name == "odd":
            return -(2**bits - 1)
        return -(2 ** (bits - 1)) if self.name == "signed" else 0

    def value(self, code: np.ndarray, bits: int) -> np.ndarray:
        """The integer values int64 that ``code`` stands for."""
        return self.gain * np.asarray(code, dtype=np.int64) + self.offset(bits)

    def zero_code(self, bits: int) -> int:
        """The code a convolution's padding reads: the value 0 where the encoding has one (code
        ``2**(bits-1)`` of a signed tensor), else code 0 (the lowest odd level)."""
        return 2 ** (bits - 1) if self.name == "signed" else 0

    def plane_op(self, m: int, bits: int) -> PlaneOp:
        """How weight plane ``m`` of ``bits`` meets an input plane: ``"xnor"`` (odd weights),
        ``"and"``, or ``"nor"`` (the top plane of signed weights)."""
        if self.name == "odd":
            return "xnor"
        return "nor" if self.name == "signed" and m == bits - 1 else "and"

    def __str__(self) -> str:
        return self.name


ODD = Encoding("odd", 2)
UNSIGNED = Encoding("unsigned", 1)
SIGNED = Encoding("signed", 1)
ENCODINGS: dict[str, Encoding] = {e.name: e for e in (ODD, UNSIGNED, SIGNED)}


def plane_product(op: PlaneOp, a: np.ndarray, w: np.ndarray) -> np.ndarray:
    """The bitwise product of packed planes ``a`` and ``w`` (uint64, broadcast) under ``op``;
    every op gives 0 for an input pad bit (0) against a weight pad bit (1)."""
    if op == "xnor":
        return ~(a ^ w)
    if op == "and":
        return a & w
    return ~(a | w)
