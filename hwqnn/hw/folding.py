"""Folding: how many output neurons (PE) and input elements (SIMD) a layer's unit does per cycle.

A layer with ``rows`` outputs and fan-in ``cols`` takes ``NF * SF`` cycles per frame, with the
neuron fold ``NF = ceil(rows / PE)`` and the synapse fold ``SF = ceil(cols / SIMD)`` (FINN's
matrix-vector-threshold unit). PE and SIMD need not divide the shape: rows and columns are padded
(pad neurons are dropped, pad inputs are masked to 0). The pipeline's initiation interval is the
slowest layer's ``NF * SF``.
"""

from __future__ import annotations

import math
import re

from hwqnn.bundle import Bundle, level_scale
from hwqnn.hw.plan import FoldingError, LayerFold, Stage, first_chunk, plan, weighted
from hwqnn.hw.resources import layer_luts
from hwqnn.intmath import ceil_div
from hwqnn.layers import window_of

MAX_LANES = 1 << 16


def validate_folding(bundle: Bundle, folds: list[LayerFold], axis_bits: int = 64) -> None:
    """Raise :class:`FoldingError` naming the layer if a PE or SIMD does not fit."""
    for (i, _, _), f in zip(weighted(bundle), folds, strict=False):
        if f.pe * f.simd > MAX_LANES:
            raise FoldingError(f"layer {i}: PE*SIMD = {f.pe * f.simd} exceeds {MAX_LANES} lanes")
    plan(bundle, folds, axis_bits)


def stages(bundle: Bundle, folds: list[LayerFold], axis_bits: int = 64) -> list[Stage]:
    """The validated hardware plan (:mod:`hwqnn.hw.plan`)."""
    validate_folding(bundle, folds, axis_bits)
    return plan(bundle, folds, axis_bits)


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


def choose_folding(
    bundle: Bundle, target_cycles: int | None = None, axis_bits: int = 64
) -> list[LayerFold]:
    """Balance every weighted layer to ``target_cycles`` per frame (default: a budget that keeps
    simulation quick: 1024 cycles, or fewer for small nets). Layer 0 is fed ``axis_bits //
    in_bits`` codes per beat, every later layer its producer's beat; a convolution's budget is
    shared by its window positions."""
    w_layers = weighted(bundle)
    if target_cycles is None:
        work = max(m.out_features * m.in_features * (w.positions if w else 1)
                   for _, m, w in w_layers)  # fmt: skip
        target_cycles = max(1, min(1024, work // 16), window_floor(bundle))
    if target_cycles < 1:
        raise FoldingError(f"target cycles per frame must be >= 1, not {target_cycles}")
    folds: list[LayerFold] = []
    chunk = first_chunk(bundle, axis_bits)
    for i, ly in enumerate(bundle.layers):
        w_layer = [(m, w) for j, m, w in w_layers if j == i]
        if not w_layer:  # pooling: its output beats are whole pixels
            chunk = ly.out_shape[-1]
            continue
        m, w = w_layer[0]
        per_vector = max(1, target_cycles // w.positions) if w else target_cycles
        f = fold_for_target(
            m.out_features, m.in_features, per_vector, w.channels if w else chunk,
            m.in_bits, m.w_bits, pe_divides=w is not None,
        )  # fmt: skip
        folds.append(f)
        chunk = f.pe
    validate_folding(bundle, folds, axis_bits)
    return folds


TOP_LUTS = 40  # register slices, reset and the collector, about (small nets' hierarchical synth)
# Per unit, beyond the terms of :func:`layer_luts` (counters, address and control logic,
# threshold memories): fitted by least squares to four small nets synthesized with xc7 at
# 64-256 cycles/frame (64(8b)-128-128-4, 100(8b)-64-48-10, 256(1b)-128-10, 196(2b)-96-96-10;
# residuals -101..+113 LUTs). Held out, the demo shape 784(8b)-512x3-10 at 256..4096
# cycles/frame: -2.5 % to -18 % (was -6 % to -41 % without it).
LAYER_LUTS = 220


def window_floor(bundle: Bundle) -> int:
    """The fewest cycles per frame the window units allow (they give one pixel a cycle), 0 for
    a net without them: the default folding balances the MVTUs to it rather than below it."""
    return max((w.positions * w.kernel**2 for ly in bundle.layers if (w := window_of(ly))),
               default=0)  # fmt: skip


def input_chunk(bundle: Bundle, axis_bits: int) -> int:
    """Codes per ``s_axis`` beat (see :mod:`hwqnn.hw.network`)."""
    return first_chunk(bundle, axis_bits)


def input_beats(bundle: Bundle, axis_bits: int) -> int:
    """``s_axis`` beats per frame: the fewest cycles per frame any folding can reach."""
    return ceil_div(bundle.in_features, input_chunk(bundle, axis_bits))


def estimate_luts(bundle: Bundle, folds: list[LayerFold], axis_bits: int = 64) -> float:
    """The LUT model of :mod:`hwqnn.hw.resources` for a whole design (xc7 LUTs; window units
    are not modelled yet)."""
    total = float(TOP_LUTS + LAYER_LUTS * len(folds))
    for st in plan(bundle, folds, axis_bits):
        m = st.matrix
        if m is None:
            continue
        acc_bits = (level_scale(m.in_bits, m.w_bits) * m.in_features).bit_length()
        chunk = st.window.channels if st.window else st.in_chunk
        total += layer_luts(
            m.out_features, m.in_features, st.pe, st.simd, min(chunk, m.in_features),
            m.in_bits, m.w_bits, acc_bits,
        )  # fmt: skip
    return total


def cycles_per_frame(bundle: Bundle, folds: list[LayerFold], axis_bits: int = 64) -> int:
    """The pipeline's interval: its slowest layer, or the input beats of a frame."""
    beats = input_beats(bundle, axis_bits)
    return max(beats, *(st.cycles for st in plan(bundle, folds, axis_bits)))


def folding_for_fps(
    bundle: Bundle, fps: float, clock_mhz: float, axis_bits: int = 64
) -> list[LayerFold]:
    """The cheapest balanced folding that reaches ``fps`` frames/s at ``clock_mhz``."""
    if not (fps > 0 and clock_mhz > 0):
        raise FoldingError(f"target fps and clock must be positive, not {fps!r} at {clock_mhz!r}")
    cycles = math.floor(clock_mhz * 1e6 / fps)
    beats = input_beats(bundle, axis_bits)
    if cycles < beats:
        raise FoldingError(
            f"{fps:g} frames/s at {clock_mhz:g} MHz needs {cycles} cycles/frame, but a frame is "
            f"{beats} beats of {axis_bits} bits: widen --axis-bits or raise the clock"
        )
    return choose_folding(bundle, cycles, axis_bits)


def cycle_grid(bundle: Bundle, axis_bits: int = 64, steps_per_octave: int = 4) -> list[int]:
    """Cycles/frame targets from the input's beats per frame (the fastest a design can take
    frames) to the largest layer's rows x cols (one lane), ``steps_per_octave`` per doubling."""
    beats = input_beats(bundle, axis_bits)
    slowest = max(beats, *(m.out_features * m.in_features * (w.positions if w else 1)
                           for _, m, w in weighted(bundle)))  # fmt: skip
    grid: list[int] = []
    k = 0
    while True:
        c = min(slowest, math.floor(beats * 2 ** (k / steps_per_octave)))
        if not grid or c > grid[-1]:
            grid.append(c)
        if c >= slowest:
            return grid
        k += 1


def folding_for_budget(bundle: Bundle, lut_budget: int, axis_bits: int = 64) -> list[LayerFold]:
    """The fastest folding on :func:`cycle_grid` whose estimated LUTs (:func:`estimate_luts`)
    fit ``lut_budget``."""
    grid = cycle_grid(bundle, axis_bits)
    for cycles in grid:
        folds = choose_folding(bundle, cycles, axis_bits)
        if estimate_luts(bundle, folds, axis_bits) <= lut_budget:
            return folds
    smallest = estimate_luts(bundle, choose_folding(bundle, grid[-1], axis_bits), axis_bits)
    raise FoldingError(
        f"the most folded design is estimated at {smallest:,.0f} LUTs, over the budget of "
        f"{lut_budget:,}"
    )
