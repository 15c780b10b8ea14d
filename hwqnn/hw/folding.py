"""Folding: how many output neurons (PE) and input elements (SIMD) a layer's unit does per cycle.

A layer with ``rows`` outputs and fan-in ``cols`` takes ``NF * SF`` cycles per frame, with the
neuron fold ``NF = ceil(rows / PE)`` and the synapse fold ``SF = ceil(cols / SIMD)`` (FINN's
matrix-vector-threshold unit). PE and SIMD need not divide the shape: rows and columns are padded
(pad neurons are dropped, pad inputs are masked to 0). The pipeline's initiation interval is the
slowest layer's ``NF * SF``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from hwqnn.bundle import Bundle


class FoldingError(ValueError):
    """A folding that does not fit the network; the message names the layer."""


@dataclass(frozen=True)
class LayerFold:
    pe: int
    simd: int

    def nf(self, rows: int) -> int:
        return -(-rows // self.pe)

    def sf(self, cols: int) -> int:
        return -(-cols // self.simd)

    def cycles(self, rows: int, cols: int) -> int:
        return self.nf(rows) * self.sf(cols)

    def __str__(self) -> str:
        return f"{self.pe}x{self.simd}"


MAX_LANES = 1 << 16


def validate_folding(bundle: Bundle, folds: list[LayerFold]) -> None:
    """Raise :class:`FoldingError` naming the layer if a PE or SIMD does not fit."""
    if len(folds) != len(bundle.layers):
        raise FoldingError(
            f"folding names {len(folds)} layer(s), the bundle has {len(bundle.layers)}"
        )
    for i, (f, layer) in enumerate(zip(folds, bundle.layers, strict=True)):
        if not 1 <= f.pe <= layer.out_features:
            raise FoldingError(
                f"layer {i}: PE must be in 1..{layer.out_features} (its outputs), not {f.pe}"
            )
        if not 1 <= f.simd <= layer.in_features:
            raise FoldingError(
                f"layer {i}: SIMD must be in 1..{layer.in_features} (its fan-in), not {f.simd}"
            )
        if f.pe * f.simd > MAX_LANES:
            raise FoldingError(f"layer {i}: PE*SIMD = {f.pe * f.simd} exceeds {MAX_LANES} lanes")


def parse_folding(text: str, bundle: Bundle) -> list[LayerFold]:
    """Parse ``"16x49,16x64,10x32"`` (PExSIMD per layer) and validate it against ``bundle``."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    folds = []
    for i, p in enumerate(parts):
        m = re.fullmatch(r"(\d+)x(\d+)", p)
        if not m:
            raise FoldingError(f"layer {i}: folding must look like PExSIMD (e.g. 16x64), not {p!r}")
        folds.append(LayerFold(int(m.group(1)), int(m.group(2))))
    validate_folding(bundle, folds)
    return folds


def fold_for_target(rows: int, cols: int, target: int) -> LayerFold:
    """The fewest lanes (PE*SIMD) that finish a layer in at most ``target`` cycles per frame;
    among equals, the fewest PEs."""
    best: tuple[int, int, LayerFold] | None = None
    for pe in range(1, rows + 1):
        nf = -(-rows // pe)
        if nf > target:
            continue
        sf_max = target // nf
        simd = -(-cols // sf_max)
        if simd > cols:
            continue
        key = (pe * simd, pe, LayerFold(pe, simd))
        if best is None or key[:2] < best[:2]:
            best = key
    assert best is not None  # pe = rows, simd = cols always fits target >= 1
    return best[2]


def choose_folding(bundle: Bundle, target_cycles: int | None = None) -> list[LayerFold]:
    """Balance every layer to ``target_cycles`` per frame (default: a budget that keeps
    simulation quick: 1024 cycles, or fewer for small nets)."""
    if target_cycles is None:
        target_cycles = min(
            1024, max(ly.out_features * ly.in_features for ly in bundle.layers) // 16
        )
        target_cycles = max(target_cycles, 1)
    if target_cycles < 1:
        raise FoldingError(f"target cycles per frame must be >= 1, not {target_cycles}")
    folds = [
        fold_for_target(ly.out_features, ly.in_features, target_cycles) for ly in bundle.layers
    ]
    validate_folding(bundle, folds)
    return folds
