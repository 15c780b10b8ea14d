"""A layer's folding (PE x SIMD) and the error that names a folding that does not fit."""

from __future__ import annotations

from dataclasses import dataclass

from hwqnn.errors import InputError
from hwqnn.intmath import ceil_div


class FoldingError(InputError):
    """A folding that does not fit the network; the message names the layer."""


@dataclass(frozen=True)
class LayerFold:
    """``pe`` output neurons and ``simd`` input codes per cycle (see :mod:`hwqnn.hw.folding`)."""

    pe: int
    simd: int

    def nf(self, rows: int) -> int:
        return ceil_div(rows, self.pe)

    def sf(self, cols: int) -> int:
        return ceil_div(cols, self.simd)

    def cycles(self, rows: int, cols: int) -> int:
        return self.nf(rows) * self.sf(cols)

    def __str__(self) -> str:
        return f"{self.pe}x{self.simd}"
