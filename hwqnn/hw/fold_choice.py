"""Choosing one matrix's folding for a cycle budget, by the LUT model of
:mod:`hwqnn.hw.resources` (the per-kind stages of :mod:`hwqnn.hw.stages` call it)."""

from __future__ import annotations

from hwqnn.hw.layerfold import LayerFold
from hwqnn.hw.resources import layer_luts
from hwqnn.intmath import ceil_div
from hwqnn.packing import level_scale

LANE_SLACK = 1.25  # the chooser may spend this many times the fewest lanes to save LUTs elsewhere


def _candidates(
    rows: int, cols: int, target: int, in_chunk: int, pe_divides: bool = False
) -> list[LayerFold]:
    """Foldings that meet ``target``: for each neuron fold, the narrowest SIMD that does, the
    same SF with the fewest codes, and the nearest widths that divide or are multiples of the
    producer's beat (``in_chunk`` codes), which need no width-conversion multiplexers. With
    ``pe_divides`` (a convolution: its pixels leave as whole beats) only PEs dividing ``rows``."""
    out: set[LayerFold] = set()
    for nf in sorted({ceil_div(rows, pe) for pe in range(1, rows + 1)}):
        if nf > target or (pe_divides and rows % nf):
            continue
        pe = ceil_div(rows, nf)
        simd_min = ceil_div(cols, target // nf)
        if simd_min > cols:
            continue
        widths = {simd_min, ceil_div(cols, ceil_div(cols, simd_min))}
        up = ceil_div(simd_min, in_chunk) * in_chunk
        if up <= cols:
            widths.add(up)
        widths.update(d for d in range(simd_min, min(in_chunk, cols) + 1) if in_chunk % d == 0)
        out.update(LayerFold(pe, w) for w in widths)
    return sorted(out, key=lambda f: (f.pe * f.simd, f.pe, f.simd))


def fold_for_target(
    rows: int,
    cols: int,
    target: int,
    in_chunk: int = 1,
    in_bits: int = 1,
    w_bits: int = 1,
    pe_divides: bool = False,
) -> LayerFold:
    """A folding that finishes a layer in at most ``target`` cycles per frame: among those with
    at most ``LANE_SLACK`` times the fewest lanes (PE*SIMD), the one the LUT model of
    :mod:`hwqnn.hw.resources` rates cheapest (its frame buffer fed ``in_chunk`` codes per beat);
    among equals, the fewest lanes, then the fewest PEs."""
    cands = _candidates(rows, cols, target, in_chunk, pe_divides)
    assert cands  # pe = rows, simd = cols always meets target >= 1
    fewest = min(f.pe * f.simd for f in cands)
    acc_bits = (level_scale(in_bits, w_bits) * cols).bit_length()

    def key(f: LayerFold) -> tuple[float, int, int]:
        est = layer_luts(rows, cols, f.pe, f.simd, min(in_chunk, cols), in_bits, w_bits, acc_bits)
        return (est, f.pe * f.simd, f.pe)

    return min((f for f in cands if f.pe * f.simd <= LANE_SLACK * fewest), key=key)
